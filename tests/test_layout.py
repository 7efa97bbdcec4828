"""The package's shape (issue 25): no import cycle, no import back up the stages (issue 32), no function over 60
lines or over 7 parameters (issue 32), inference free of training code and of the config, no dated figure in a
docstring or comment (figures live in benchmarks/README.md), and the decision threshold written in one place
(issue 32)."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "textclf"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every textclf module `name` imports: at the top, inside a function (lazily) or under `if TYPE_CHECKING`;
    relative or absolute."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "textclf":
                target = node.module
            else:
                continue
            found |= {t for t in [target, *(f"{target}.{a.name}" for a in node.names)] if t in modules}
    return found - {name}


def test_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in graph[name]:
            assert state.get(dep) != 1, " -> ".join([*stack, dep])
            if dep not in state:
                visit(dep, [*stack, dep])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


# The stages, lowest first: a module imports modules of its own stage or a lower one, never of a later stage, lazily
# or not. The leaves import nothing of textclf but one another; device.py, the ground floor of all that runs a
# network (devices, precision, the loss, forward passes), stands on the leaves alone. A room is on one stage, or
# names its modules where they stand apart: the Hub's (hub/) has its names and downloads with the leaves (data and
# model loading read hf: names), its card with the models (every saved model writes one), push with the commands.
STAGES = [
    {"errors", "files", "threads", "allocator", "_version", "hub", "hub.download", "options"},
    {"device"},
    {"text"},
    {"data"},
    {"models", "hub.card"},
    {"inference"},
    {"reports", "serving", "ray", "hub.push", "baseline"},
    {"training", "config"},
    {"cli", "__main__", ""},  # "": textclf/__init__.py (its lazy `Classifier`)
]


def _stage(name: str) -> int:
    """The stage of the most specific entry that names `name` (hub.card before hub)."""
    parts = name.removeprefix("textclf").removeprefix(".").split(".")
    for end in range(len(parts), 0, -1):
        stages = [i for i, rooms in enumerate(STAGES) if ".".join(parts[:end]) in rooms]
        if stages:
            return stages[0]
    raise AssertionError(f"{name} is in no stage: add it to STAGES")


def _upward(modules: dict[str, Path]) -> set[tuple[str, str]]:
    """(module, what it imports of a later stage); a module's own packages (loaded before it anyway) aside."""
    return {(name, dep) for name, path in modules.items() for dep in _imports(name, path, modules)
            if not name.startswith(dep + ".") and _stage(dep) > _stage(name)}


def test_no_import_runs_back_up_the_stages():
    """text → data → models → inference → reports/serving → training → cli, on the leaves and device.py: in
    particular nothing in text/, data/, models/ or inference/ imports training/, not even inside a function."""
    upward = _upward(_modules())
    assert not upward, sorted(upward)


def test_the_stage_scan_finds_lazy_and_absolute_imports(tmp_path):
    root = tmp_path / "textclf"
    (root / "models").mkdir(parents=True)
    (root / "training").mkdir()
    files = {"__init__.py": "", "models/__init__.py": "", "training/__init__.py": "", "training/distributed.py": "",
             "errors.py": "", "device.py": "from .errors import TextclfError\n\ndef f():\n    from .training import "
             "distributed\n", "models/lstm.py": "import textclf.training.distributed\nfrom textclf.device import f\n"}
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    modules = {".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    lazy = {("textclf.device", "textclf.training"), ("textclf.device", "textclf.training.distributed")}
    assert _upward(modules) == lazy | {("textclf.models.lstm", "textclf.training.distributed")}


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long


MAX_PARAMETERS = 7


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Its parameters, self and cls not counted, *args and **kwargs one each."""
    args = node.args
    named = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg not in ("self", "cls")]
    return len(named) + (args.vararg is not None) + (args.kwarg is not None)


def _too_many_parameters(tree: ast.AST) -> list[tuple[int, str, int]]:
    """(line, name, parameters) of each function with more than MAX_PARAMETERS; a dataclass's generated
    constructor is no function here, so its fields are free."""
    return [(node.lineno, node.name, _parameters(node)) for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _parameters(node) > MAX_PARAMETERS]


def test_no_function_takes_more_than_7_parameters():
    """Options that travel together are one value (a dataclass: `LoadOptions`, `FileFormat`, `AppOptions` ...),
    not a seventh, eighth and ninth argument passed on down the calls."""
    many = [f"{path.relative_to(REPO)}:{line} {name} ({count})" for path in sorted(PACKAGE.rglob("*.py"))
            for line, name, count in _too_many_parameters(ast.parse(path.read_text(encoding="utf-8")))]
    assert not many, "gather options that travel together into a dataclass: " + "; ".join(many)


def test_the_parameter_scan_finds_what_it_is_for():
    code = """
def eight(a, b, c, d, e, f, g, h): ...
def seven_and_kwargs(a, b, c, d, e, f, g, **kw): ...
async def keywords(a, *, b, c, d, e, f, g, h): ...
class A:
    def method(self, a, b, c, d, e, f, g): ...
    @classmethod
    def build(cls, a, b, c, d, e, f, g, *args): ...
def seven(a, b, c, d, e, f, g): ...
def five_and_both(a, b, c, d, e, *args, **kw): ...
@dataclass
class Fields:
    a: int
    b: int
    c: int
    d: int
    e: int
    f: int
    g: int
    h: int
"""
    assert [(line, name) for line, name, _ in _too_many_parameters(ast.parse(code))] == [
        (2, "eight"), (3, "seven_and_kwargs"), (4, "keywords"), (8, "build")]


# a measured figure in prose: a date, a speed-up ("8x faster", "twice as fast", "half the time"), steps run, a
# class ratio; figures live in benchmarks/README.md, with their date, and go stale in a docstring
FIGURES = re.compile(r"\b20\d\d-\d\d-\d\d\b|\b\d+(\.\d+)?x (faster|slower|as fast)\b|\btwice as (fast|slow)\b"
                     r"|\bhalf the time\b|\(\d[\d,]* steps\)|\b\d+:\d+(:\d+)* classes\b")


def test_no_measured_figure_in_the_package():
    found = [f"{p.relative_to(REPO)}:{i}" for p in PACKAGE.rglob("*.py")
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if FIGURES.search(line)]
    assert not found


def test_the_figure_scan_finds_what_it_is_for():
    for line in ("2026-12-03", "on IMDB 8x faster than", "1.5x slower", "runs about twice as fast", "half the time of",
                 "when 5 epochs (825 steps) were up", "(airline tweets, 4:1:1 classes)"):
        assert FIGURES.search(line), line
    for line in ("a 2-core VM", "x = 8 * y", "the 3 classes", "steps = 825", "ids of 21 bits"):
        assert not FIGURES.search(line), line


def test_inference_and_serving_import_neither_training_code_nor_the_config():
    code = ("import json, sys\n"
            "import textclf.inference.classifier, textclf.inference.explain, textclf.inference.export\n"
            "import textclf.serving.app, textclf.reports.evaluation, textclf.ray\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('textclf.'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert not [m for m in loaded if m.startswith("textclf.training") or m == "textclf.config"], loaded


DECISION_HOME = PACKAGE / "models" / "decision.py"
# comparisons with 0.5 that are no decision: name them here, with why
NOT_A_DECISION = {"auc > 0.5": "finetune.py: ROC-AUC's chance level, which way round the new labels are"}


def _threshold_name(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return "threshold" in name.lower()


def _half(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is float and node.value == 0.5


def _decision_literals(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a literal 0.5 stands for the decision threshold: a `threshold` argument's default (`def f(threshold=
    0.5)`) or value (`f(threshold=0.5)`, `threshold = 0.5`, `threshold: float = Field(0.5)`, `threshold or 0.5`),
    an option's default (`add_argument("--threshold", default=0.5)`), or a comparison (`p[:, 1] >= 0.5`)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True),
                     *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
            found += [(node.lineno, f"default of {a.arg}") for a, d in pairs
                      if "threshold" in a.arg.lower() and _half(d)]
        elif isinstance(node, ast.Call):
            named = any(isinstance(a, ast.Constant) and "threshold" in str(a.value).lower() for a in node.args)
            found += [(node.lineno, f"{k.arg}=0.5") for k in node.keywords
                      if _half(k.value) and k.arg and ("threshold" in k.arg.lower() or (named and k.arg == "default"))]
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_threshold_name(t) for t in targets) and any(_half(n) for n in ast.walk(node.value)):
                found.append((node.lineno, "assigned to a threshold"))
        elif isinstance(node, ast.BoolOp | ast.IfExp):
            parts = node.values if isinstance(node, ast.BoolOp) else [node.test, node.body, node.orelse]
            if any(_half(p) for p in parts) and any(_threshold_name(n) for n in ast.walk(node)):
                found.append((node.lineno, "a threshold's fallback"))
        elif (isinstance(node, ast.Compare) and any(_half(n) for n in [node.left, *node.comparators])
              and ast.unparse(node) not in NOT_A_DECISION):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_the_decision_threshold_is_written_in_one_place():
    """0.5 as the decision threshold lives in models/decision.py (`DEFAULT_THRESHOLD`, `decide`); everywhere else
    imports it, so the default cannot drift between the CLI, the Classifier, the server, the plots and the
    metrics. 0.5s that are no decision (a dropout, a weight, a cosine's half, AUC's chance level) pass."""
    written = [f"{p.relative_to(REPO)}:{line} {what}" for p in sorted(PACKAGE.rglob("*.py")) if p != DECISION_HOME
               for line, what in _decision_literals(ast.parse(p.read_text(encoding="utf-8")))]
    assert not written, "use models.decision.DEFAULT_THRESHOLD (or decide) instead of 0.5: " + "; ".join(written)


def test_the_decision_scan_finds_what_it_is_for():
    code = """
def predict(texts, threshold: float = 0.5): ...
def explain(text, *, threshold=0.5): ...
run(texts, threshold=0.5)
p.add_argument("--threshold", type=float, default=0.5)
threshold: float = Field(0.5, ge=0.0)
self.threshold = threshold if threshold is not None else 0.5
t = threshold or 0.5
labels = probs[:, 1] >= 0.5
"""
    assert sorted(line for line, _ in _decision_literals(ast.parse(code))) == [2, 3, 4, 5, 6, 7, 7, 8, 9]
    fine = "dropout = 0.5\nlr = 0.5 * (1 + cos)\nf(weight=0.5, num_cpus=0.5)\nx = auc > 0.5\nh = han >= 0.5 * n\n"
    assert _decision_literals(ast.parse(fine)) == []


def test_the_tests_are_laid_out_like_the_package():
    """tests/ has a folder per room of textclf/ that has tests (text/, data/, ... training/, hub/), and none that
    textclf/ lacks: a test of textclf/models/lstm.py is tests/models/test_lstm.py."""
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert folders and folders <= rooms, f"test folders without a room of textclf/: {sorted(folders - rooms)}"
    for folder in folders:
        modules = {p.stem for p in (PACKAGE / folder).glob("*.py")}
        assert any(f"test_{m}.py" in {t.name for t in (tests / folder).glob("test_*.py")} for m in modules)
