"""``cfguard tune``: replay recordings once per candidate parameter value and score the outcomes."""
