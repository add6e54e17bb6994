"""The project's commands: `unwritten check`, `unwritten demo`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from unwritten_pipeline.lib.llm.base import LLMError
from unwritten_pipeline.lib.storage.files import read_json
from unwritten_pipeline.lib.storage.layout import MULTITASK_MODEL, PERSONALITY_MODEL, Layout
from unwritten_pipeline.resources.storage import PROJECT_ROOT

DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster_home"


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME (default: .dagster_home in the checkout) with the project's dagster.yaml."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(DEFAULT_DAGSTER_HOME))).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def cmd_check(args: argparse.Namespace) -> int:
    """Is the configured backend reachable and are the profile's models there?"""
    from unwritten_pipeline.lib.generation.prompts import load_seed_examples
    from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
    from unwritten_pipeline.resources.llm import LLMResource
    from unwritten_pipeline.resources.storage import ArtifactStore

    llm, store = LLMResource.from_env(), ArtifactStore.from_env()
    try:
        profile = llm.load_profile()
        for data_type in DATA_TYPES:
            load_seed_examples(store.seed_examples_dir, data_type)
        backend = llm.open_backend(store.model_cache_dir)
    except ValueError as exc:
        print(f"FAIL  configuration: {exc}")
        return 1
    print(f"profile {profile.name}: backend {llm.backend_name()} at {backend.endpoint}")
    try:
        backend.check(profile.models())
    except LLMError as exc:
        print(f"FAIL  {exc}")
        return 1
    finally:
        backend.close()
    for model in profile.models():
        print(f"OK    {model} is available")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the pipeline on the configured profile into the persistent instance: today's
    llm_batches and validated_samples for every data type, training_splits, then the
    FuseChat soft labels and the PersonalityModel, and the LoRA multi-task model."""
    home = ensure_dagster_home()
    import dagster as dg

    from unwritten_pipeline.definitions import defs
    from unwritten_pipeline.defs.generation.partitions import partition_key
    from unwritten_pipeline.lib.generation.schemas import DATA_TYPES
    from unwritten_pipeline.resources.storage import ArtifactStore

    date = args.date or datetime.now(UTC).strftime("%Y-%m-%d")
    types = args.data_type or list(DATA_TYPES)
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    generation = dict(quiet)
    if args.count:
        generation["ops"] = {"llm_batches": {"config": {"sample_count": args.count}}}
    steps = [
        ("generation_job", generation, True),
        ("curation_job", quiet, True),
        ("splits_job", quiet, False),
        ("observe_personality_inputs", quiet, False),
        ("personality_job", quiet, False),
        ("multitask_job", quiet, False),
        ("release_job", quiet, False),
    ]
    failed: list[str] = []
    with dg.DagsterInstance.get() as instance:
        for job_name, run_config, partitioned in steps:
            job = defs.resolve_job_def(job_name)
            for data_type in types if partitioned else [None]:
                label = f"{job_name} {data_type} {date}" if partitioned else job_name
                print(f"== {label}", flush=True)
                result = job.execute_in_process(
                    partition_key=partition_key(date, data_type) if partitioned else None,
                    run_config=run_config,
                    instance=instance,
                    raise_on_error=False,
                )
                print(
                    f"   run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}",
                    flush=True,
                )
                if not result.success:
                    failed.append(label)
    layout = ArtifactStore.from_env().layout
    print(_demo_summary(layout, date, types))
    if layout.benchmark_report_md.is_file():
        print("\n" + layout.benchmark_report_md.read_text())
    print(
        f"\nBatch files:       {layout.batches_dir('<data_type>', date)}/\n"
        f"Validated samples: {layout.validated_root}/<data_type>/{date}/"
        " (accepted.jsonl, rejected.jsonl)\n"
        f"Training splits:   {layout.splits_dir}/\n"
        f"PersonalityModel:  {layout.model_dir(PERSONALITY_MODEL)}/"
        f" (soft labels: {layout.soft_labels_dir}/)\n"
        f"Multi-task model:  {layout.model_dir(MULTITASK_MODEL)}/ (merged/ is ready for export)\n"
        f"Exports:           {layout.exports_dir}/ (LiteRT .tflite, Core ML in coreml/)\n"
        f"Benchmark report:  {layout.benchmark_report_md}\n"
        f"Release:           {_latest_release(layout)}  (check it: unwritten verify-release <dir>)\n"
        f"Dagster instance:  {home}\n"
        "Open the UI: make ui   (then http://127.0.0.1:3000 → Assets)"
    )
    if failed:
        print(f"\nFAILED: {', '.join(failed)}")
    return 1 if failed else 0


def _latest_release(layout: Layout) -> str:
    pointer = layout.latest_release_pointer
    return read_json(pointer)["path"] if pointer.is_file() else "none shipped"


def _demo_summary(layout: Layout, date: str, types: list[str]) -> str:
    from unwritten_pipeline.lib.curation.validate import SUMMARY_FILE

    lines = [
        "",
        f"{'data_type':<24}{'accepted':>9}{'rejected':>9}{'pass rate':>11}  top reject reason",
    ]
    for data_type in types:
        path = layout.validated_dir(data_type, date) / SUMMARY_FILE
        if not path.is_file():
            lines.append(f"{data_type:<24}{'-':>9}{'-':>9}{'-':>11}")
            continue
        summary = read_json(path)
        top = next(iter(summary["rejects_by_reason"]), "-")
        lines.append(
            f"{data_type:<24}{summary['accepted']:>9}{summary['rejected']:>9}"
            f"{100 * summary['pass_rate']:>10.0f}%  {top}"
        )
    return "\n".join(lines)


def cmd_verify_release(args: argparse.Namespace) -> int:
    """Recompute every sha256 of a release directory against its manifest."""
    from unwritten_pipeline.lib.export.release import verify_release

    problems = verify_release(Path(args.directory))
    for problem in problems:
        print(f"FAIL  {problem}")
    if not problems:
        manifest = read_json(Path(args.directory) / "manifest.json")
        print(
            f"OK    release {manifest['version']}: {len(manifest['files'])} files match manifest.json"
        )
    return 1 if problems else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Inputs, outputs, metadata of an exported model (.tflite, .mlpackage, .mlmodel)."""
    from unwritten_pipeline.lib.export.tflite import TFLiteRunner

    path = Path(args.model)
    if path.suffix in (".mlpackage", ".mlmodel"):
        from unwritten_pipeline.lib.export.coreml import describe

        try:
            print(json.dumps(describe(path), indent=2))
        except FileNotFoundError as exc:
            print(f"FAIL  {exc}")
            return 1
        return 0
    try:
        runner = TFLiteRunner(path)
    except (FileNotFoundError, ValueError) as exc:
        print(f"FAIL  {exc}")
        return 1
    details = runner.interpreter.get_signature_runner()
    print(f"{path} ({path.stat().st_size:,} bytes)")
    for kind, items in (
        ("input", details.get_input_details()),
        ("output", details.get_output_details()),
    ):
        for name, detail in items.items():
            print(
                f"  {kind:<6} {name:<20} shape={[int(d) for d in detail['shape']]} dtype={detail['dtype'].__name__}"
            )
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    """Which data produced this shipped model? Release version or file sha256 → the chain back."""
    from unwritten_pipeline.lib.export.lineage import LineageError, find_release, lineage_lines
    from unwritten_pipeline.resources.storage import ArtifactStore

    releases = (
        Path(args.releases) if args.releases else ArtifactStore.from_env().layout.releases_dir
    )
    try:
        directory, matched = find_release(releases, args.key)
    except LineageError as exc:
        print(f"FAIL  {exc}")
        return 1
    print("\n".join(lineage_lines(directory, matched)))
    return 0


def cmd_scale_out(args: argparse.Namespace) -> int:
    """The local scale-out stack (Redis, PostgreSQL, Celery workers, the daemon) on 127.0.0.1."""
    from unwritten_pipeline.defs.scaleout.operations import (
        launch_partitions,
        stack_config,
        stack_paths,
    )
    from unwritten_pipeline.lib.scaleout import stack

    paths = stack_paths()
    try:
        if args.action == "up":
            services = stack.up(stack_config(paths))
            print(f"OK    {len(services)} services started; state in {paths.state}")
        elif args.action == "down":
            for stopped in stack.down(paths):
                print(f"stopped {stopped}")
        elif args.action == "status":
            for service, alive in stack.status(paths):
                print(f"{service.name:<24} pid {service.pid:<8} {'up' if alive else 'DOWN'}")
        else:
            date = args.date or datetime.now(UTC).strftime("%Y-%m-%d")
            for run_id in launch_partitions(paths, date, args.data_type):
                print(f"queued run {run_id}")
    except (stack.ServiceUnavailableError, RuntimeError) as exc:
        print(f"FAIL  {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unwritten", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="verify the configured LLM backend and its models").set_defaults(
        func=cmd_check
    )
    demo = sub.add_parser(
        "demo", help="run the main job on the configured profile (default: embedded demo)"
    )
    demo.add_argument(
        "--count", type=int, default=None, help="samples per data type (default: the profile's)"
    )
    demo.add_argument(
        "--date", default=None, help="partition date YYYY-MM-DD (default: today, UTC)"
    )
    demo.add_argument("--data-type", action="append", help="only this data type (repeatable)")
    demo.set_defaults(func=cmd_demo)
    verify = sub.add_parser("verify-release", help="recompute every sha256 of a release directory")
    verify.add_argument("directory")
    verify.set_defaults(func=cmd_verify_release)
    lineage = sub.add_parser(
        "lineage", help="the chain from a release version or model sha256 back to its data"
    )
    lineage.add_argument(
        "key", help="release version (1.0.1) or a shipped file's sha256 (or its first 8+ chars)"
    )
    lineage.add_argument(
        "--releases", default=None, help="releases folder (default: <data_root>/releases)"
    )
    lineage.set_defaults(func=cmd_lineage)
    inspect = sub.add_parser("inspect", help="print an exported model's inputs and outputs")
    inspect.add_argument("model")
    inspect.set_defaults(func=cmd_inspect)
    scale_out = sub.add_parser(
        "scale-out", help="local Redis/PostgreSQL/Celery/daemon stack: up, down, status, launch"
    )
    scale_out.add_argument("action", choices=["up", "down", "status", "launch"])
    scale_out.add_argument("--date", default=None, help="launch: partition date (default today)")
    scale_out.add_argument("--data-type", action="append", help="launch: only this data type")
    scale_out.set_defaults(func=cmd_scale_out)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
