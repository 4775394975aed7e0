"""Synthetic CloudFront real-time log traffic for a file-sharing site: users, abuse, hard negatives.

``generate(seed, start, duration_s, rate, scenarios=...)`` yields batches of 45-field lines in
event-time order; ``Generator(...).live()`` paces them on the wall clock; ``Generator.labels()``
says which keys are abusive. See docs/traffic.md.
"""

from consumer.traffic.generator import DEFAULT_START, Generator, generate
from consumer.traffic.registry import ABUSE_NAMES, NEGATIVE_NAMES, SCENARIOS

__all__ = ["ABUSE_NAMES", "DEFAULT_START", "NEGATIVE_NAMES", "SCENARIOS", "Generator", "generate"]
