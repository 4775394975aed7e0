"""The block Lambda: applies cfguard's block decisions (DynamoDB blocklist + WAFv2 IP sets).

Deployed as a package ``block_lambda`` next to ``actions/payload.py`` (the event model it shares
with the sender); handler ``block_lambda.handler.handler``. See README.md here.
"""
