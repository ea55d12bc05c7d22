"""Scenario files: the pydantic schema, YAML loading with line numbers, size/duration/memory parsing.

from memharness.scenario import load, ScenarioError
scenario = load("scenarios/quickstart.yaml")   # raises ScenarioError listing every problem
"""

from memharness.scenario.errors import ScenarioError, ScenarioIssue
from memharness.scenario.loader import load, load_text
from memharness.scenario.schema import (
    FileCorpus,
    HFCorpus,
    Lengths,
    PipelineSpec,
    Scenario,
    SyntheticCorpus,
)
from memharness.scenario.units import format_size, parse_duration, parse_memory, parse_size

__all__ = [
    "FileCorpus",
    "HFCorpus",
    "Lengths",
    "PipelineSpec",
    "Scenario",
    "ScenarioError",
    "ScenarioIssue",
    "SyntheticCorpus",
    "format_size",
    "load",
    "load_text",
    "parse_duration",
    "parse_memory",
    "parse_size",
]
