import dagster as dg

from unwritten_pipeline.defs.stage import stage_definitions
from unwritten_pipeline.defs.student.assets import (
    multitask_student,
    student_coreml_package,
    student_tflite,
)


def student_defs() -> dg.Definitions:
    return stage_definitions(
        [multitask_student, student_tflite, student_coreml_package],
        job="student_job",
        description="Distil the on-device student from multitask_model, QAT to INT4, export "
        "LiteRT and Core ML.",
    )
