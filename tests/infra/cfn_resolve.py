"""A small CloudFormation evaluator for the tests: the template as a stack would see it for given
parameters (conditions applied, intrinsics resolved to names and ARNs), and an IAM check of which
actions a role's identity policies allow on which ARN.

Only what ``infra/template.yaml`` uses: Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Equals, Fn::Not,
AWS::NoValue. Physical names follow the resources' Name properties the way CloudFormation does.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Any

REGION, ACCOUNT = "us-east-1", "123456789012"
PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
_NO_VALUE = object()


def _arn(service: str, rest: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}"


class Stack:
    def __init__(self, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.t = template
        self.params = {k: str(p.get("Default", "")) for k, p in template["Parameters"].items()}
        self.params.update(parameters)
        self.conditions = {n: bool(self.value(c)) for n, c in template.get("Conditions", {}).items()}
        self.resources = {
            n: r
            for n, r in template["Resources"].items()
            if self.conditions.get(r.get("Condition", ""), True)
        }
        self.names: dict[str, str] = {}
        self.arns: dict[str, str] = {}
        for n, r in self.resources.items():
            self._physical(n, r)

    def _physical(self, n: str, r: dict[str, Any]) -> None:
        props = r.get("Properties", {})
        typ = r["Type"]
        if typ == "AWS::Kinesis::Stream":
            name = self.value(props["Name"])
            self.names[n], self.arns[n] = name, _arn("kinesis", f"stream/{name}")
        elif typ == "AWS::Lambda::Function":
            name = self.value(props["FunctionName"])
            self.names[n], self.arns[n] = name, _arn("lambda", f"function:{name}")
        elif typ == "AWS::DynamoDB::Table":
            name = self.value(props["TableName"])
            self.names[n], self.arns[n] = name, _arn("dynamodb", f"table/{name}")
        elif typ == "AWS::S3::Bucket":
            self.names[n], self.arns[n] = f"stack-{n.lower()}-abc", f"arn:aws:s3:::stack-{n.lower()}-abc"
        elif typ == "AWS::SQS::Queue":
            name = self.value(props["QueueName"])
            self.names[n] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            self.arns[n] = _arn("sqs", name)
        else:
            self.names[n], self.arns[n] = f"{n}-physical", _arn("stub", n)

    # ------------------------------------------------------------------------------------- intrinsics
    def value(self, node: Any) -> Any:
        out = self._value(node)
        return None if out is _NO_VALUE else out

    def _value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self._value(x) for x in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, arg), = node.items()  # fmt: skip
            if fn == "Ref":
                return self._ref(arg)
            if fn == "Fn::GetAtt":
                return self._getatt(*arg)
            if fn == "Fn::Sub":
                return self._sub(arg)
            if fn == "Fn::If":
                cond, yes, no = arg
                return self._value(yes if self.conditions[cond] else no)
            if fn == "Fn::Equals":
                a, b = (self._value(x) for x in arg)
                return a == b
            if fn == "Fn::Not":
                return not self._value(arg[0])
            if fn == "Condition":
                return self.conditions[arg]
        return {k: v for k, v in ((k, self._value(v)) for k, v in node.items()) if v is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.params:
            return self.params[name]
        assert name in self.resources, f"Ref to a resource the stack does not create: {name}"
        return self.names[name]

    def _getatt(self, name: str, attr: str) -> str:
        assert name in self.resources, f"GetAtt on a resource the stack does not create: {name}"
        if attr == "Arn":
            return self.arns[name]
        if attr in ("QueueName", "Name"):
            return self.names[name].rsplit("/", 1)[-1]
        return f"{self.names[name]}.{attr}"

    def _sub(self, arg: Any) -> str:
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        local = {k: self._value(v) for k, v in extra.items()}

        def repl(m: re.Match[str]) -> str:
            ref = m.group(1)
            if ref.startswith("!"):
                return "${" + ref[1:] + "}"
            if ref in local:
                return str(local[ref])
            if "." in ref and ref.split(".", 1)[0] in self.t["Resources"]:
                return str(self._getatt(*ref.split(".", 1)))
            return str(self._ref(ref))

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    # ------------------------------------------------------------------------------------- resources
    def props(self, name: str) -> dict[str, Any]:
        return self.value(self.resources[name].get("Properties", {}))  # type: ignore[no-any-return]

    def of_type(self, typ: str) -> list[str]:
        return [n for n, r in self.resources.items() if r["Type"] == typ]

    def role_of(self, task_definition: str) -> str:
        arn = self.props(task_definition)["TaskRoleArn"]
        return next(n for n, a in self.arns.items() if a == arn)

    def allows(self, role: str, action: str, arn: str) -> bool:
        """An Allow statement of the role's inline policies grants ``action`` on ``arn`` (conditions
        are not evaluated: they only narrow)."""
        for policy in self.props(role).get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                if (
                    st["Effect"] == "Allow"
                    and action in actions
                    and any(fnmatchcase(arn, r) for r in resources)
                ):
                    return True
        return False
