import dagster as dg

from unwritten_pipeline.defs.student.assets import (
    multitask_student,
    student_coreml_package,
    student_tflite,
)

student_job = dg.define_asset_job(
    "student_job",
    selection=[multitask_student, student_tflite, student_coreml_package],
    description="Distil the on-device student from multitask_model, QAT to INT4, export LiteRT "
    "and Core ML.",
)


def student_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[multitask_student, student_tflite, student_coreml_package], jobs=[student_job]
    )
