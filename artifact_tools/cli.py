"""The ``artifact-tools`` command line.

Exit status: 0 success; 2 a bad input or request (one sentence on stderr, no traceback); 1 an unexpected
internal error (one sentence; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

from .archive import Limits
from .errors import ArtifactError

MAX_MESSAGE = 600  # characters of an error sentence printed (a hostile member name can be megabytes long)


def _limits(args) -> Limits:
    """The limits from the environment, then the command line; 0 is a value (``--max-ratio 0``: no ratio check)."""
    given = {"max_ratio": getattr(args, "max_ratio", None), "max_members": getattr(args, "max_members", None),
             "max_total_bytes": getattr(args, "max_bytes", None)}
    return dataclasses.replace(Limits.from_env(), **{k: v for k, v in given.items() if v is not None})


def _add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-ratio", type=float, help="refuse archives expanding more than this (default 250:1; 0 turns the check off)")
    p.add_argument("--max-members", type=int, help="refuse archives with more entries (default 100000)")
    p.add_argument("--max-bytes", type=int, help="refuse archives holding more bytes (default 200 GiB)")


def cmd_inspect(args) -> int:
    from .inspection import inspect

    report = inspect(args.artifact, limits=_limits(args))
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        from rich.console import Console

        Console().print(report)
    return 0


def cmd_convert_xgboost(args) -> int:
    from .archive import open_artifact
    from .sniff import sniff

    from loaders import xgboost_legacy

    if not args.out.endswith((".json", ".ubj")):
        raise ArtifactError(f"the output name must end in .json or .ubj, not {os.path.basename(args.out)}")
    _refuse_existing(args.out, args.force)
    def keep(m, head):  # keep only XGBoost model files, whole
        kind = sniff(m.name, head, m.size)
        return m.size if kind == "xgboost" or (kind == "pickle" and b"xgboost" in head[:4096]) else 0

    with open_artifact(args.artifact, _limits(args)) as art:
        kept = art.scan(keep)
    models = list(kept)
    if not models:
        raise ArtifactError(f"{args.artifact} holds no XGBoost model")
    if len(models) > 1 and not args.member:
        raise ArtifactError(f"{args.artifact} holds several XGBoost models ({', '.join(models)}); choose one with --member")
    name = args.member or models[0]
    if name not in kept:
        raise ArtifactError(f"{name} is not an XGBoost model in {args.artifact}")
    facts = xgboost_legacy.convert_file(kept[name], args.out)
    print(f"wrote {args.out} ({facts.get('era', '?')} -> {'UBJSON' if args.out.endswith('.ubj') else 'JSON'})")
    return 0


def _options(pairs: list[str] | None) -> dict:
    out = {}
    for kv in pairs or []:
        if "=" not in kv:
            raise ArtifactError(f"option {kv!r} must look like KEY=VALUE")
        k, v = kv.split("=", 1)
        out[k.strip()] = v
    return out


def _refuse_existing(path: str, force: bool) -> None:
    if os.path.exists(path) and not force:
        raise ArtifactError(f"{path} already exists; pass --force to overwrite it")


def cmd_load(args) -> int:
    import loaders

    trust: bool | str = "all" if args.trust_all else bool(args.trust)
    options = _options(args.option)
    model = loaders.load(args.artifact, trust=trust, limits=_limits(args), **options)
    print(f"loaded {model.framework} model: {type(model.model).__name__}", file=sys.stderr)
    if args.predict:
        data = loaders.read_input(args.predict)
        try:
            out = model.predict(data)
        except (ValueError, TypeError, KeyError, IndexError) as e:  # the framework rejected these rows
            raise ArtifactError(f"the model rejected the rows in {args.predict}: {_first_line(e)}") from None
        sys.stdout.write(loaders.format_output(out, args.output_format) + "\n")
    return 0


def _first_line(e: BaseException, limit: int = 300) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line if len(line) <= limit else line[:limit] + "..."


def cmd_export(args) -> int:
    import exporters

    options = _options(args.option)
    trust: bool | str = "all" if args.trust_all else bool(args.trust)
    result = exporters.export(args.artifact, args.to, args.out, force=args.force, trust=trust, **options)
    print(result.summary() if hasattr(result, "summary") else result)
    return 0


def cmd_serve(args) -> int:
    from . import serve

    port = args.port
    if port is None:
        env = os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")
        if not env.isdigit():
            raise ArtifactError(f"SAGEMAKER_BIND_TO_PORT must be a port number, not {env!r}")
        port = int(env)
    trust: bool | str = "all" if args.trust_all else bool(args.trust)
    return serve.run(args.artifact, host=args.host, port=port, workers=args.workers, trust=trust,
                     max_payload=args.max_payload, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="artifact-tools",
                                description="Inspect, load and re-export trained model artifacts (SageMaker model.tar.gz and more).")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("inspect", help="tell what is inside an artifact without running or importing anything")
    s.add_argument("artifact", help="model.tar.gz, .tar, .zip, a folder, a loose model file, or an s3:// (fsspec) URI")
    s.add_argument("--json", action="store_true", help="print the report as JSON (schema artifact-tools.inspect/1)")
    _add_limits(s)
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("convert-xgboost", help="rewrite any-era XGBoost model as a current JSON/UBJSON model file")
    s.add_argument("artifact")
    s.add_argument("out", help="OUT.json or OUT.ubj")
    s.add_argument("--member", help="which model file inside the artifact, when there are several")
    s.add_argument("--force", action="store_true", help="overwrite an existing output")
    _add_limits(s)
    s.set_defaults(func=cmd_convert_xgboost)

    s = sub.add_parser("load", help="rebuild the live model and optionally predict")
    s.add_argument("artifact")
    s.add_argument("--predict", metavar="INPUT", help="a .csv, .json, .jsonl or .npy file (or - for CSV on stdin)")
    s.add_argument("--output-format", choices=["json", "csv"], default="json")
    s.add_argument("--trust", action="store_true", help="allow unpickling types outside the allowlist")
    s.add_argument("--trust-all", action="store_true", help="also allow pickles naming dangerous calls")
    s.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="loader option, e.g. backend=numpy, host=2, version=3, signature=serving_default")
    _add_limits(s)
    s.set_defaults(func=cmd_load)

    s = sub.add_parser("export", help="write the model for another serving system and verify it")
    s.add_argument("artifact")
    s.add_argument("--to", required=True, choices=["sagemaker", "tf-serving", "git", "mleap"])
    s.add_argument("out")
    s.add_argument("--force", action="store_true", help="overwrite an existing output")
    s.add_argument("--trust", action="store_true", help="allow types outside the allowlist and code loading runs")
    s.add_argument("--trust-all", action="store_true", help="also allow pickles naming dangerous calls")
    s.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="target-specific option")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("serve", help="serve the model with the SageMaker container contract (/ping, /invocations)")
    s.add_argument("artifact")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=None, help="default: $SAGEMAKER_BIND_TO_PORT or 8080")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--max-payload", type=int, default=6 * 1024 * 1024, help="bytes (default 6 MB)")
    s.add_argument("--timeout", type=int, default=None, help="worker timeout in seconds (default 60)")
    s.add_argument("--trust", action="store_true")
    s.add_argument("--trust-all", action="store_true")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ArtifactError as e:
        print(f"artifact-tools: {_first_line(e, MAX_MESSAGE)}", file=sys.stderr)
        return e.exit_code
    except RecursionError:  # only input structure recurses this deep: a JSON or protobuf document nested on purpose
        print("artifact-tools: the input nests too deeply to be read (a JSON or protobuf document nested "
              "thousands of levels)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("artifact-tools: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # an internal error: still one sentence unless --debug
        if args.debug:
            raise
        print(f"artifact-tools: internal error: {type(e).__name__}: {_first_line(e, MAX_MESSAGE)} "
              "(run with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
