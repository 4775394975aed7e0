"""What happens to a finding: the guard decides, blocks go to the block Lambda, alerts to a JSON-lines sink.

Where each concept lives:

- ``runner.py``        ActionRunner: findings in, decisions out (the pipeline's entry point)
- ``decision.py``      Decision, the recorded unit (``to_record()`` for decision lines)
- ``guard.py``         modes, allowlist, cooldown, escalation, circuit breaker, in event time
- ``allowlist.py``, ``key_state.py``, ``breaker.py``, ``idempotency.py``: the guard's parts
- ``payload.py``       the block Lambda's event model (shared with ``infra/block_lambda``)
- ``lambda_action.py`` invoke with retries/backoff/timeouts; ``backoff.py`` full-jitter delays
- ``delivery.py``      bounded queue + worker thread; ``spool.py`` durable JSONL; ``dead_letter.py`` SQS
- ``alert.py``         alert lines (when/where/who/what + evidence); ``pseudonym.py`` keyed HMAC
- ``blocklist.py``     reading the DynamoDB blocklist (``cfguard blocks``)
- ``config.py``        ActionsConfig, the ``actions:`` section of the YAML
"""
