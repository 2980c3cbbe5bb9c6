"""The commands in README.md and docs/*.md name flags and config fields that exist.

For every ``experiments/<script>.py`` command in a fenced code block of README.md or
docs/*.md, and in an inline code span that names such a script, the test checks:

* the script exists and defines every ``--flag`` given to it: the names come from the script's
  source (``flags.DEFINE_*("name"`` and ``config_flags.DEFINE_config_*("name"`` calls; the
  script is never imported, so no absl flag is registered and nothing runs), plus absl's own
  flags (``--flagfile``, ``--help``, ...); a boolean flag may also be given as ``--noname``;
* every ``--config.<section>.<field>=<value>`` override names a field of the config that the
  command's ``--config=configs/<name>.py[:arg]`` loads (``get_config(arg)``, or ``get_config()``
  without ``:arg``), and the script takes ``--config``;
* the values, parsed by ml_collections' own config-flag parser (``DEFINE_config_dict`` on the
  loaded config: ints, floats, bools, tuples as ``"('a','b')"``, strings), set the fields and the
  result passes :func:`lasca_jax.run.validate.problems` (with ``sweep=True`` for ``sweep.py``
  and for ``encode.py --sweep``, as those scripts call it).

What is not checked, and why:

* Checks that need files: ``validate`` asks for an existing ``data.root``, ``data.face_csv_dir``
  / ``data.audio_csv_dir`` folder, ``model.baseline_dir`` folder and ``text.lexicon`` file. The
  docs show placeholder paths (``/data/SEWA``), so a problem of one of these fields that asks for
  an *existing* path is ignored; every other problem of these fields (an empty ``data.root``, say)
  and of all other fields fails the test.
* Placeholder values (``...``, ``<...>``, ``$VAR``): the field or flag must exist, its value is
  not parsed. A placeholder config (``--config=...``) is read as ``configs/default.py``. A
  ``configs/from_json.py:<path>`` whose JSON file is absent cannot be loaded: its command may show
  no override.
* Flag values other than config overrides (``--run=runs/x``): only the flag's name is checked.

A second test checks inline ``--config.<field>=`` mentions without a script (prose such as
"set ``--config.data.fps``"): the field must exist in one of the configs under ``configs/``.
A third checks that every relative link of these pages names an existing file (and heading).
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import re
import shlex

import pytest
from absl import flags
from ml_collections import config_flags

from lasca_jax.run import validate
from lasca_jax.run.fields import get_field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT)
                              for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))

# Flags absl itself defines for every script (app.run and absl.logging).
ABSL_FLAGS = {"flagfile", "undefok", "help", "helpshort", "helpfull", "helpxml", "only_check_args",
              "pdb", "pdb_post_mortem", "run_with_pdb", "run_with_profiling", "profile_file",
              "use_cprofile_for_profiling", "logtostderr", "alsologtostderr", "log_dir",
              "verbosity", "v", "stderrthreshold", "showprefixforinfo", "logger_levels"}
# validate's problems that only say a path does not exist here: "<field>=<value> (need ...)".
PATH_FIELDS = {"data.root", "data.face_csv_dir", "data.audio_csv_dir", "model.baseline_dir",
               "text.lexicon"}
SCRIPT = re.compile(r"(?:^|/)(experiments/)?(\w+)\.py$")
DEFINE = re.compile(r"\b(?:config_)?flags\.DEFINE_(\w+)\(\s*(?:name\s*=\s*)?[\"'](\w+)[\"']")
SEPARATORS = {";", "&", "&&", "|", "||", "do", "then", "done", "fi", "(", ")"}


def is_placeholder(value: str) -> bool:
  return "..." in value or "$" in value or ("<" in value and ">" in value)


# ----------------------------------------------------------------------------- reading the docs


def fenced_blocks(text: str):
  """(first line number, language, body) of every fenced code block."""
  out, lines, i = [], text.split("\n"), 0
  while i < len(lines):
    m = re.match(r"\s*(```+|~~~+)\s*(\S*)", lines[i])
    if m:
      fence, lang, start = m.group(1), m.group(2), i + 1
      i += 1
      while i < len(lines) and not lines[i].strip().startswith(fence):
        i += 1
      out.append((start + 1, lang, "\n".join(lines[start:i])))
    i += 1
  return out


def without_fences(text: str) -> str:
  """The text with fenced blocks blanked (line numbers kept)."""
  return re.sub(r"(?ms)^\s*(```+|~~~+).*?^\s*\1\s*$",
                lambda m: "\n" * m.group(0).count("\n"), text)


def inline_spans(text: str):
  """(line number, content) of every inline code span outside fenced blocks."""
  prose = without_fences(text)
  for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
    yield prose.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split())


def shell_words(line: str) -> list[str]:
  lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
  lexer.whitespace_split = True
  lexer.commenters = "#"
  return list(lexer)


def commands_in(words: list[str]):
  """(script, args) of every experiments/<script>.py in a list of shell words."""
  for i, word in enumerate(words):
    if " " in word and "experiments/" in word:   # a quoted command, e.g. sbatch --wrap "..."
      yield from commands_in(shell_words(word))
      continue
    m = SCRIPT.search(word)
    if not m or not (m.group(1) or os.path.isfile(os.path.join(ROOT, "experiments", word))):
      continue   # "sweep.py" alone counts when experiments/sweep.py exists
    args = []
    for arg in words[i + 1:]:
      if arg in SEPARATORS:
        break
      args.append(arg)
    yield m.group(2), args


def doc_commands():
  """(where, script, args, source line) of every script command in the docs."""
  out = []
  for doc in DOCS:
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    for start, lang, body in fenced_blocks(text):
      if lang in ("python", "py", "json"):
        continue
      logical, first = "", None
      for offset, line in enumerate(body.split("\n")):
        first = start + offset if first is None else first
        if line.rstrip().endswith("\\"):
          logical += line.rstrip()[:-1] + " "
          continue
        logical += line
        if "experiments/" in logical:
          for script, args in commands_in(shell_words(logical)):
            out.append((f"{doc}:{first}", script, args, logical.strip()))
        logical, first = "", None
    for line, span in inline_spans(text):
      for script, args in span_commands(span):
        out.append((f"{doc}:{line} (inline)", script, args, span))
  return out


def span_commands(span: str):
  """The script commands of an inline code span (none for prose such as ``pipeline.py``)."""
  if not re.search(r"\w+\.py\b", span):
    return []
  try:
    return list(commands_in(shell_words(span)))
  except ValueError:   # unbalanced quotes: not a command, unless it names a script
    return [("?", [span])] if "experiments/" in span else []


COMMANDS = doc_commands()


# ----------------------------------------------------------------------------- the scripts


@functools.lru_cache(maxsize=None)
def script_flags(script: str) -> dict[str, str]:
  """{flag name: DEFINE_ kind} of ``experiments/<script>.py``, read from its source."""
  path = os.path.join(ROOT, "experiments", f"{script}.py")
  with open(path, encoding="utf-8") as f:
    return {name: kind for kind, name in DEFINE.findall(f.read())}


def load_config(spec: str):
  """The config ``--config=<spec>`` loads, as ml_collections' config_file flag loads it."""
  path, colon, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_docs_config", os.path.join(ROOT, path))
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if colon else module.get_config()


def parse_overrides(config, overrides: list[tuple[str, str]]):
  """``config`` with ``--config.<field>=<value>`` applied by ml_collections' parser."""
  argv = ["docs"] + [f"--config.{field}={value}" for field, value in overrides]
  values = flags.FlagValues()
  config_flags.DEFINE_config_dict("config", config, flag_values=values, sys_argv=argv,
                                  lock_config=True)
  values(argv)
  return values.config


def filesystem_only(problem: str) -> bool:
  field = problem.split("=", 1)[0]
  return field in PATH_FIELDS and "existing" in problem.rsplit("(need", 1)[-1]


def check_command(script: str, args: list[str]) -> list[str]:
  """Everything wrong with one command (empty when it is fine)."""
  if not os.path.isfile(os.path.join(ROOT, "experiments", f"{script}.py")):
    return [f"experiments/{script}.py does not exist"]
  defined = script_flags(script)
  errors, config_spec, overrides, given = [], None, [], set()
  i = 0
  while i < len(args):
    arg = args[i]
    i += 1
    if not arg.startswith("-"):
      errors.append(f"positional argument {arg!r}: the scripts take flags only")
      continue
    name, has_value, value = arg.lstrip("-").partition("=")
    if name.startswith("config."):
      if "config" not in defined:
        errors.append(f"--{name}: experiments/{script}.py has no --config")
      elif config_spec is None:
        errors.append(f"--{name} comes before --config=")
      else:
        overrides.append((name[len("config."):], value))
      continue
    base = name[2:] if name.startswith("no") and name[2:] in defined else name
    kind = defined.get(base)
    if kind is None and base not in ABSL_FLAGS:
      close = [n for n in defined if n.startswith(base[:3])]
      errors.append(f"--{name} is not a flag of experiments/{script}.py"
                    + (f" (it has {', '.join(sorted(close))})" if close else ""))
      continue
    if base != name and kind not in ("bool", "boolean"):
      errors.append(f"--{name}: --{base} is not a boolean flag")
    if not has_value and kind not in ("bool", "boolean", None) and i < len(args) \
        and not args[i].startswith("-"):
      value, i = args[i], i + 1   # --flag value
    given.add(base)
    if base == "config":
      config_spec = value
  if errors or config_spec is None:
    return errors

  if is_placeholder(config_spec):
    config_spec = "configs/default.py"
  try:
    config = load_config(config_spec)
  except (FileNotFoundError, ValueError) as e:   # from_json.py's "cannot read it" is a ValueError
    if isinstance(e, ValueError) and "cannot read it" not in str(e):
      raise
    if overrides:
      return [f"--config={config_spec} cannot be loaded here ({e}), so its overrides cannot be "
              "checked"]
    return []

  for field, _ in overrides:
    message = validate.unknown_override(config, field)
    if message:
      errors.append(message)
  if errors:
    return errors
  parsed = [(f, v) for f, v in overrides if not is_placeholder(v)]
  try:
    config = parse_overrides(config, parsed)
  except Exception as e:  # pylint: disable=broad-except
    return [f"ml_collections rejects the overrides: {' '.join(str(e).split())}"]
  sweep = script == "sweep" or (script == "encode" and "sweep" in given)
  return [p for p in validate.problems(config, sweep=sweep) if not filesystem_only(p)]


# ----------------------------------------------------------------------------- tests


def test_the_docs_show_commands():
  """The extraction works: the README's main command and the sweeps are found."""
  scripts = {script for _, script, _, _ in COMMANDS}
  assert {"main", "sweep", "extract", "encode", "predict", "explain"} <= scripts
  assert any(where.startswith("README.md") and script == "main"
             for where, script, _, _ in COMMANDS)


@pytest.mark.parametrize("where,script,args,line", COMMANDS,
                         ids=[f"{c[0]}:{c[1]}" for c in COMMANDS])
def test_command_flags_and_fields_exist(where, script, args, line):
  errors = check_command(script, args)
  assert not errors, f"{where}: {line}\n  " + "\n  ".join(errors)


def all_configs():
  """Every config under configs/ with each argument its get_config knows."""
  specs = ["configs/default.py", "configs/synthetic.py:runlocal,sweep", "configs/sewa.py",
           "configs/affwild2.py", "configs/videos.py", "configs/custom.py"]
  return [load_config(s) for s in specs]


def test_inline_overrides_name_existing_fields():
  configs = all_configs()
  missing = object()
  bad = []
  for doc in DOCS:
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    for line, span in inline_spans(text):
      if span_commands(span):
        continue   # checked with its script above
      for field in re.findall(r"--config\.([\w.]+)", span):
        if all(get_field(c, field, missing) is missing for c in configs):
          bad.append(f"{doc}:{line}: --config.{field} is a field of no config in configs/")
  assert not bad, "\n".join(bad)


def test_inline_flags_exist_in_some_script():
  """A bare ``--flag`` in an inline span is a flag of some experiments/ script."""
  known = set(ABSL_FLAGS)
  for path in glob.glob(os.path.join(ROOT, "experiments", "*.py")):
    known |= set(script_flags(os.path.basename(path)[:-3]))
  bad = []
  for doc in DOCS:
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    for line, span in inline_spans(text):
      if span_commands(span):
        continue
      for name in re.findall(r"(?<![\w=-])--([a-z]\w*)\b(?!\.)", span):
        if name not in known and not (name.startswith("no") and name[2:] in known):
          bad.append(f"{doc}:{line}: --{name} is a flag of no experiments/ script")
  assert not bad, "\n".join(bad)


def heading_anchors(path: str) -> set[str]:
  """GitHub's anchors for the headings of a markdown file."""
  anchors = set()
  text = without_fences(open(path, encoding="utf-8").read())
  for m in re.finditer(r"(?m)^#{1,6}\s+(.+?)\s*$", text):
    slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
    anchors.add(slug)
  return anchors


def test_relative_links_resolve():
  bad = []
  for doc in DOCS + ["CHANGELOG.md"]:
    path = os.path.join(ROOT, doc)
    text = without_fences(open(path, encoding="utf-8").read())
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
      target = m.group(1)
      if re.match(r"[a-z]+:", target):
        continue   # https:, mailto:
      file_part, _, anchor = target.partition("#")
      resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part \
          else path
      if not os.path.exists(resolved):
        bad.append(f"{doc}: link {target}: no file {os.path.relpath(resolved, ROOT)}")
      elif anchor and resolved.endswith(".md") and anchor not in heading_anchors(resolved):
        bad.append(f"{doc}: link {target}: no heading #{anchor}")
  assert not bad, "\n".join(bad)


def doc_imports():
  """(where, module, names) of every ``from lasca_jax... import ...`` / ``import lasca_jax...``
  line, in fenced blocks and inline spans of the docs."""
  pattern = re.compile(r"^\s*(?:from\s+(lasca_jax[\w.]*)\s+import\s+([\w, ]+)|"
                       r"import\s+(lasca_jax[\w.]*))")
  for doc in DOCS:
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    lines = [(start + i, line) for start, _, body in fenced_blocks(text)
             for i, line in enumerate(body.splitlines())]
    lines += list(inline_spans(text))
    for line_no, line in lines:
      m = pattern.match(line)
      if m:
        names = [n.strip().split(" as ")[0] for n in (m.group(2) or "").split(",") if n.strip()]
        yield f"{doc}:{line_no}", m.group(1) or m.group(3), names


@pytest.mark.parametrize("where,module,names", list(doc_imports()))
def test_the_docs_imports_work(where, module, names):
  """``from lasca_jax import bundle`` (it is ``lasca_jax.model.bundle``) failed for a reader."""
  imported = importlib.import_module(module)
  for name in names:
    assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), (
        f"{where}: {module} has no {name}")
