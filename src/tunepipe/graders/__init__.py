"""Code graders for evaluations: user or built-in Python source defining
``grader(messages, tools, tool_choice, generated_output, dataset_output) -> float``, run out of
process under CPU, memory and wall-clock limits (``sandbox``), with built-ins that take the same path
(``builtin``)."""

from tunepipe.graders.builtin import BUILTIN, exact_match, json_field_match, text_similarity
from tunepipe.graders.sandbox import Case, Grade, GraderInvalid, Limits, check_source, run_grader

__all__ = [
    "BUILTIN",
    "Case",
    "Grade",
    "GraderInvalid",
    "Limits",
    "check_source",
    "exact_match",
    "json_field_match",
    "run_grader",
    "text_similarity",
]
