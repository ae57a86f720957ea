"""The ``artifact-tools`` command line.

Exit status: 0 success; 2 a bad input or request (one sentence on stderr, no traceback); 1 an unexpected
internal error (one sentence; ``--debug`` shows the traceback).

Global flags (before or after the command): ``--debug``, ``-v``/``--verbose`` (once: INFO, twice: DEBUG),
``-q``/``--quiet`` (no progress bars). Every command that opens an artifact takes the same trust flags
(``--trust``, ``--trust-all``) and limit flags (``--max-ratio``, ``--max-members``, ``--max-bytes``).

The CLI is the application, so it alone decides what the process logs: it configures ``logging`` (the library
only logs through ``logging.getLogger(__name__)``) and, unless ``--debug`` or ``-vv``, quiets the frameworks a
command imports, before they are imported: environment variables they read at import time
(``TF_CPP_MIN_LOG_LEVEL``, ``TRANSFORMERS_VERBOSITY``...; a value the user set is kept), their loggers and their
Python warnings (sklearn's ``InconsistentVersionWarning``...: the loader's own one-line version warning is logged
instead). Everything is put back when :func:`main` returns.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import textwrap
import threading
import warnings
from typing import Any, Callable, Iterator, NoReturn, Sequence

from . import __version__, progress
from .archive import Limits
from .errors import ArtifactError

MAX_MESSAGE = 600  # characters of an error sentence printed (a hostile member name can be megabytes long)
log = logging.getLogger(__name__)

# Read by the frameworks when they are imported. TensorFlow 2.21 still prints a few lines (the oneDNN and CUDA
# notices) through absl before it reads its log level: no environment variable reaches those.
_QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ logging: errors only
    "GRPC_VERBOSITY": "ERROR",  # gRPC (TensorFlow, tensorflow-serving-api)
    "TRANSFORMERS_VERBOSITY": "error",  # transformers' own logger (it resets its level from this at import)
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "KMP_WARNINGS": "0",  # Intel OpenMP runtime notices
}
_FRAMEWORK_LOGGERS = ("tensorflow", "absl", "keras", "tf_keras", "h5py", "transformers", "huggingface_hub",
                      "torch", "xgboost", "mxnet", "pyspark", "py4j", "urllib3", "filelock")
_FRAMEWORK_MODULES = (r"(sklearn|xgboost|tensorflow|keras|tf_keras|transformers|tokenizers|huggingface_hub|torch|"
                      r"mxnet|pyspark|py4j|h5py|joblib|absl|google\.protobuf)(\.|$)")
_LIMIT_ENV = {"max_members": "ARTIFACT_TOOLS_MAX_MEMBERS", "max_total_bytes": "ARTIFACT_TOOLS_MAX_BYTES",
              "max_ratio": "ARTIFACT_TOOLS_MAX_RATIO"}


# ------------------------------------------------------------------------------------------ flags

def limits_from_args(args) -> Limits:
    """The limits from the environment, then the command line; 0 is a value (``--max-ratio 0``: no ratio check)."""
    given = {"max_ratio": getattr(args, "max_ratio", None), "max_members": getattr(args, "max_members", None),
             "max_total_bytes": getattr(args, "max_bytes", None)}
    return Limits.from_env().replace(**{k: v for k, v in given.items() if v is not None})


def trust_from_args(args) -> bool | str:
    """The trust level the ``--trust`` / ``--trust-all`` flags give."""
    return "all" if args.trust_all else bool(args.trust)


def _add_opening(p: argparse.ArgumentParser, trust_note: str = "") -> None:
    """The trust and limit flags every command that opens an artifact takes."""
    p.add_argument("--trust", action="store_true",
                   help="allow types outside the pickle allowlist and code that loading runs" + trust_note)
    p.add_argument("--trust-all", action="store_true",
                   help="also allow pickles naming dangerous calls (only for artifacts you wrote)" + trust_note)
    p.add_argument("--max-ratio", type=float, metavar="N",
                   help="refuse archives expanding more than N:1 (default 250; 0 turns the check off)")
    p.add_argument("--max-members", type=int, metavar="N", help="refuse archives with more entries (default 100000)")
    p.add_argument("--max-bytes", type=int, metavar="N", help="refuse archives holding more bytes (default 200 GiB)")


def _add_global(p: argparse.ArgumentParser, sub: bool) -> None:
    """``--debug``, ``-v`` and ``-q``, on the main parser and again on every command, so that they work in any
    position. A command's copies write to their own names (``*_sub``, merged by :func:`_merge_global`): argparse
    fills a command's flags into a fresh namespace, which would reset a count given before the command."""
    suffix = "_sub" if sub else ""
    p.add_argument("--debug", action="store_true", dest="debug" + suffix, default=argparse.SUPPRESS if sub else False,
                   help="show tracebacks of internal errors and leave the frameworks' own logs as they are")
    p.add_argument("-v", "--verbose", action="count", dest="verbose" + suffix, default=argparse.SUPPRESS if sub else 0,
                   help="say what is happening (-v: steps and timings; -vv: debug detail and the frameworks' logs)")
    p.add_argument("-q", "--quiet", action="store_true", dest="quiet" + suffix,
                   default=argparse.SUPPRESS if sub else False, help="no progress bars")


def _merge_global(args: argparse.Namespace) -> None:
    args.debug = bool(args.debug or getattr(args, "debug_sub", False))
    args.verbose = int(args.verbose or 0) + int(getattr(args, "verbose_sub", 0) or 0)
    args.quiet = bool(args.quiet or getattr(args, "quiet_sub", False))


def _options(pairs: list[str] | None) -> dict:
    out = {}
    for kv in pairs or []:
        if "=" not in kv:
            raise ArtifactError(f"option {kv!r} must look like KEY=VALUE")
        k, v = kv.split("=", 1)
        if not k.strip():
            raise ArtifactError(f"option {kv!r} has no name before '='")
        out[k.strip()] = v
    return out


def _first_line(e: BaseException, limit: int = 300) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line if len(line) <= limit else line[:limit] + "..."


# ------------------------------------------------------------------------------------------ commands

def cmd_inspect(args) -> int:
    from .inspection import inspect

    report = inspect(args.artifact, limits=limits_from_args(args))
    if args.json:
        sys.stdout.write(report.to_json() + "\n")
    else:
        from rich.console import Console

        Console().print(report)
    return 0


def cmd_convert_xgboost(args) -> int:
    from pathlib import Path

    from exporters._atomic import refuse_existing, staged

    from .archive import open_artifact
    from .formats import xgboost as xgb_format
    from .sniff import sniff

    if not args.out.endswith((".json", ".ubj")):
        raise ArtifactError(f"the output name must end in .json or .ubj, not {os.path.basename(args.out)}")
    refuse_existing(Path(args.out), args.force)

    def keep(m, head):  # keep only XGBoost model files, whole
        kind = sniff(m.name, head, m.size)
        return m.size if kind == "xgboost" or (kind == "pickle" and b"xgboost" in head[:4096]) else 0

    with open_artifact(args.artifact, limits_from_args(args)) as art:
        kept = art.scan(keep)
    models = list(kept)
    if not models:
        raise ArtifactError(f"{args.artifact} holds no XGBoost model")
    if len(models) > 1 and not args.member:
        raise ArtifactError(f"{args.artifact} holds several XGBoost models ({', '.join(models)}); "
                            "choose one with --member")
    name = args.member or models[0]
    if name not in kept:
        raise ArtifactError(f"{name} is not an XGBoost model in {args.artifact}")
    payload, facts = xgb_format.convert(kept[name], "ubj" if args.out.endswith(".ubj") else "json")
    with staged(args.out, args.force, folder=False) as tmp:
        tmp.write_bytes(payload)
    print(f"wrote {args.out} ({facts.get('era', '?')} -> {'UBJSON' if args.out.endswith('.ubj') else 'JSON'})")
    return 0


_OUTPUT_TYPES = {"json": "application/json", "csv": "text/csv", "jsonlines": "application/jsonlines"}


def cmd_load(args) -> int:
    import loaders

    from . import codec

    options = _options(args.option)
    if args.member:
        if "member" in options and options["member"] != args.member:
            raise ArtifactError(f"--member {args.member} and -o member={options['member']} disagree; give one")
        options["member"] = args.member
    if args.predict and args.sample:
        raise ArtifactError("give --predict INPUT or --sample, not both")
    request = codec.read_file(args.predict) if args.predict else None  # a bad input fails before the model loads
    model = loaders.load(args.artifact, trust=trust_from_args(args), limits=limits_from_args(args), **options)
    print(f"loaded {model.framework} model: {type(model.model).__name__}", file=sys.stderr)
    if model.info.get("warning"):
        log.warning("%s", model.info["warning"])
    kind = _OUTPUT_TYPES[args.output_format]
    if args.sample:
        try:
            sample = model.sample_input()
        except ArtifactError:
            raise
        except Exception as e:  # the loader's sample builder failing is still this artifact's problem
            raise ArtifactError(f"no sample input can be built for this {model.framework} model: "
                                f"{type(e).__name__}: {_first_line(e)}") from None
        print(f"sample input built from the artifact's metadata:\n{_show(sample, kind)}", file=sys.stderr)
        out = _predict(model, sample, "its own sample input")
        style = None
    elif request is not None:
        out = _predict(model, request.data, f"the rows in {args.predict}")
        style = request.style
    else:
        return 0
    sys.stdout.write(codec.encode(out, kind, style)[0].decode("utf-8").rstrip("\n") + "\n")
    return 0


def _show(data: Any, kind: str) -> str:
    """``data`` as text for the user: in the output format, else JSON, else its type."""
    from . import codec

    for how in (kind, codec.JSON):
        try:
            return codec.encode(data, how)[0].decode("utf-8").rstrip("\n")
        except codec.CodecError:
            continue
    return f"(a {type(data).__name__})"


def _predict(model: Any, data: Any, what: str) -> Any:
    try:
        return model.predict(data)
    except (ValueError, TypeError, KeyError, IndexError) as e:  # the framework rejected these rows
        raise ArtifactError(f"the model rejected {what}: {_first_line(e)}") from None


def cmd_export(args) -> int:
    import exporters

    options = _options(args.option)
    with _limits_for_library(limits_from_args(args)):
        result = exporters.export(args.artifact, args.to, args.out, force=args.force, trust=trust_from_args(args),
                                  **options)
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
    from . import endpoint

    if endpoint.requested(args):  # --variant, --endpoint-config, --multi-model, --pipeline (or no artifact)
        with _limits_for_library(limits_from_args(args)):
            return endpoint.run_from_args(args, port=port, trust=trust_from_args(args))
    with _limits_for_library(limits_from_args(args)):  # the workers inherit them
        return serve.run(args.artifact, host=args.host, port=port, workers=args.workers, trust=trust_from_args(args),
                         max_payload=args.max_payload, timeout=args.timeout,
                         capture=endpoint.capture_from_args(args))


@contextlib.contextmanager
def _limits_for_library(limits: Limits) -> Iterator[None]:
    """The limits as the ``ARTIFACT_TOOLS_MAX_*`` variables ``Limits.from_env`` reads, for the commands whose
    library calls open the artifact more than once or in other processes (export re-reads it to repack, serve
    loads it in each worker). Put back afterwards."""
    values = {var: repr(getattr(limits, attr)) for attr, var in _LIMIT_ENV.items()}
    with _environment(values, override=True):
        yield


# ------------------------------------------------------------------------------------------ parser

class _Parser(argparse.ArgumentParser):
    """Errors in one sentence (no usage dump); an epilog computed only when help is shown."""

    epilog_fn: Callable[[], str] | None = None

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def format_help(self) -> str:
        if self.epilog_fn is not None:
            self.epilog = self.epilog_fn()
        return super().format_help()


def _loader_options_help() -> str:
    """The ``-o`` options of every loader, from their option dataclasses."""
    import importlib

    import loaders
    from loaders.base import describe_options

    by_module: dict[str, tuple[Any, list[str]]] = {}
    for framework, name in loaders.LOADER_MODULES.items():
        try:
            cls = getattr(importlib.import_module(name), "OPTIONS", None)
        except ImportError:  # pragma: no cover - loader modules import no framework at module level
            continue
        if cls is not None:
            by_module.setdefault(name, (cls, []))[1].append(framework)
    lines = ["loader options (-o KEY=VALUE), by the framework inspection finds:"]
    for cls, frameworks in by_module.values():
        text = f"{', '.join(frameworks)}: {describe_options(cls) or 'none'}"
        lines += textwrap.wrap(text, 100, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)


def _export_options_help() -> str:
    """The ``-o`` options of every export target, from their option dataclasses."""
    from exporters import TARGETS, target_module
    from loaders.base import describe_options

    lines = ["target options (-o KEY=VALUE):"]
    for target in TARGETS:
        cls = getattr(target_module(target), "OPTIONS", None)
        if cls is not None:
            lines += textwrap.wrap(f"{target}: {describe_options(cls) or 'none'}", 100, initial_indent="  ",
                                   subsequent_indent="      ")
    return "\n".join(lines)


def _export_targets() -> list[str]:
    """The export targets, from the exporters package (its targets are imported only when used)."""
    from exporters import TARGETS

    return list(TARGETS)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. With ``only`` naming a command, that command's parser alone: what :func:`main` needs to run
    it (no other command's flags are built, no other command's module is imported). With ``only=""``, every command,
    those of :data:`_APP_COMMANDS` by name and help only (their modules are not imported)."""
    p = _Parser(prog="artifact-tools",
                description="Inspect, load and re-export trained model artifacts (SageMaker model.tar.gz and more).")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_global(p, sub=False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help: str, **kw) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=help, description=help, **kw)
        _add_global(s, sub=True)
        return s

    for name in ("inspect", "convert-xgboost", "load", *_APP_COMMANDS):
        if only is None or only == name:
            _add_command(name, sub, command)
        elif only == "":
            help = _APP_COMMANDS.get(name)
            if help is None:
                _add_command(name, sub, command)
            else:  # listed by name for --help; its module is imported only when it runs
                sub.add_parser(name, help=help, description=help)
    return p


def _add_command(name: str, sub: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the full parser of the command ``name`` (``command`` adds a parser with the global flags)."""
    if name == "inspect":
        s = command("inspect", "tell what is inside an artifact without running or importing anything")
        s.add_argument("artifact",
                       help="model.tar.gz, .tar, .zip, a folder, a loose model file, or an s3:// (fsspec) URI")
        s.add_argument("--json", action="store_true", help="print the report as JSON (schema artifact-tools.inspect/1)")
        _add_opening(s, " (inspection runs nothing, so this changes nothing here)")
        s.set_defaults(func=cmd_inspect)
    elif name == "convert-xgboost":
        s = command("convert-xgboost", "rewrite any-era XGBoost model as a current JSON/UBJSON model file")
        s.add_argument("artifact")
        s.add_argument("out", help="OUT.json or OUT.ubj")
        s.add_argument("--member", help="which model file inside the artifact, when there are several")
        s.add_argument("--force", action="store_true", help="overwrite an existing output")
        _add_opening(s, " (XGBoost models are read as data, so this changes nothing here)")
        s.set_defaults(func=cmd_convert_xgboost)
    elif name == "load":
        s = command("load", "rebuild the live model and optionally predict",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("artifact")
        s.add_argument("--predict", metavar="INPUT",
                       help="predict on a .csv (with or without a header), .json, .jsonl or .npy file, told by "
                            "content (- reads standard input)")
        s.add_argument("--sample", action="store_true",
                       help="build a small valid input from the artifact's own metadata, show it on stderr and "
                            "predict")
        s.add_argument("--member", metavar="NAME",
                       help="which model file to load when the artifact holds several (loader option member=NAME)")
        s.add_argument("--output-format", choices=sorted(_OUTPUT_TYPES), default="json",
                       help="how predictions are printed (default json; the same rules as serve's Accept types)")
        s.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                       help="loader option, e.g. backend=numpy, host=2, version=3, signature=serving_default")
        _add_opening(s)
        s.set_defaults(func=cmd_load)
        s.epilog_fn = _loader_options_help  # type: ignore[attr-defined]
    elif name == "export":
        s = command("export", _APP_COMMANDS["export"], formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("artifact")
        s.add_argument("--to", required=True, choices=_export_targets())
        s.add_argument("out")
        s.add_argument("--force", action="store_true", help="overwrite an existing output")
        s.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="target-specific option")
        _add_opening(s)
        s.set_defaults(func=cmd_export)
        s.epilog_fn = _export_options_help  # type: ignore[attr-defined]
    elif name == "serve":
        s = command("serve", _APP_COMMANDS["serve"])
        s.add_argument("artifact", nargs="?", help="the model (or with --pipeline: the first model)")
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, default=None, help="default: $SAGEMAKER_BIND_TO_PORT or 8080")
        s.add_argument("--workers", type=int, default=2)
        s.add_argument("--max-payload", type=int, default=6 * 1024 * 1024, help="bytes (default 6 MB)")
        s.add_argument("--timeout", type=int, default=None,
                       help="seconds one request may take: its body's arrival or one prediction "
                            "(default $SAGEMAKER_MODEL_SERVER_TIMEOUT or 60)")
        from .endpoint import add_serve_flags

        add_serve_flags(s)
        _add_opening(s)
        s.set_defaults(func=cmd_serve)
    elif name == "endpoint":
        from .endpoint import add_endpoint_command

        add_endpoint_command(sub, add_opening=_add_opening, add_global=_add_global)
    elif name == "transform":
        from .batch import add_transform_command

        add_transform_command(sub, add_opening=_add_opening, add_global=_add_global)
    elif name == "migrate":
        from .migrate import add_migrate_command

        add_migrate_command(sub, add_opening=_add_opening, add_global=_add_global)
    elif name == "monitor":
        from .monitor import add_monitor_command

        add_monitor_command(sub, add_opening=_add_opening, add_global=_add_global)


# The commands whose parsers come from (or need) a module of their own, with their one-line help: the module is
# imported only when its command runs (or for the full parser), so `inspect` starts without numpy or the server.
_APP_COMMANDS = {
    "export": "write the model for another serving system and verify it",
    "serve": "serve the model with the SageMaker container contract (/ping, /invocations)",
    "endpoint": "change a running local endpoint (as UpdateEndpointWeightsAndCapacities does)",
    "transform": "score input files offline with SageMaker Batch Transform's parameters and output layout",
    "migrate": "migrate a fleet of models (artifacts or SageMaker model descriptions) to another target, with a report",
    "monitor": "Model Monitor without AWS: baselines of a dataset and violation reports of captured traffic",
}


def _command_in(argv: Sequence[str]) -> str:
    """The command an argument list runs ("" when none is named): its first word that is not a flag (the global
    flags before a command take no value), when that word names a command."""
    word = next((a for a in argv if not a.startswith("-")), "")
    return word if word in ("inspect", "convert-xgboost", "load", *_APP_COMMANDS) else ""


# ------------------------------------------------------------------------------------------ process set-up

@contextlib.contextmanager
def _environment(values: dict[str, str], override: bool = False) -> Iterator[None]:
    """Set environment variables for the block (without ``override``, only those not set already), then put
    back exactly what was there."""
    saved = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if override or k not in os.environ:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        elif record.levelno < logging.INFO:
            text = f"[{record.name}] {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"artifact-tools: {text}"


@contextlib.contextmanager
def _logging(verbose: int, debug: bool) -> Iterator[None]:
    """Our log lines on stderr at the level ``-v`` asks for; the frameworks quieted unless ``--debug`` or ``-vv``.
    Put back as it was afterwards."""
    level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING
    quiet_frameworks = not debug and verbose < 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    ours = [logging.getLogger(n) for n in ("artifact_tools", "loaders", "exporters")]
    theirs = [logging.getLogger(n) for n in _FRAMEWORK_LOGGERS] if quiet_frameworks else []
    saved = [(lg, lg.level) for lg in [root, *ours, *theirs]]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for lg in ours:
        lg.setLevel(level)
    for lg in theirs:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _environment(_QUIET_ENV if quiet_frameworks else {}):
            if quiet_frameworks and not sys.warnoptions:  # -W / PYTHONWARNINGS: the user's own choice wins
                warnings.filterwarnings("ignore", module=_FRAMEWORK_MODULES)
                warnings.filterwarnings("ignore", message="Trying to unpickle estimator")  # InconsistentVersionWarning
            yield
    finally:
        root.removeHandler(handler)
        for lg, lv in saved:
            lg.setLevel(lv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=_command_in(argv))
    args = parser.parse_args(argv)
    _merge_global(args)
    previous = _on_sigterm_raise()
    stdout_errors = _escape_unencodable(sys.stdout)
    try:
        with _logging(args.verbose, args.debug), progress.quiet(args.quiet):
            return int(args.func(args) or 0)
    except Terminated:
        print("artifact-tools: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
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
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if stdout_errors is not None:
            sys.stdout.reconfigure(errors=stdout_errors)  # type: ignore[union-attr]


def _escape_unencodable(stream) -> str | None:
    """Let ``stream`` write what its encoding cannot (a member name that is not UTF-8 printed under
    ``PYTHONIOENCODING=ascii``, say) as backslash escapes, as Python's stderr does, instead of failing the command;
    the error handler it had, to restore, or None when it was not changed."""
    errors = getattr(stream, "errors", None)
    if errors != "strict" or not hasattr(stream, "reconfigure"):
        return None
    try:
        stream.reconfigure(errors="backslashreplace")
    except (ValueError, OSError):  # closed or detached
        return None
    return errors


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``with``/``finally`` runs: outputs staged beside their
    destination and scratch folders are removed (the default action of SIGTERM ends the process on the spot)."""


def _raise_terminated(signum, frame):
    raise Terminated


def _on_sigterm_raise():
    """Install the SIGTERM handler raising :class:`Terminated` (main thread only); returns the previous one."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
