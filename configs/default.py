"""Shared defaults for every lasca_jax experiment; dataset configs import and override these.

Run (any field can be overridden on the command line):

  python experiments/main.py --config=configs/synthetic.py --workdir=runs/synthetic \
      --config.pairs.target=valence --config.features.window_seconds=5
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Every field of every experiment, with its default (sections below)."""
  config = ml_collections.ConfigDict()
  config.name = "default"          # Run name; the run directory is <workdir> (default runs/<name>).
  config.seed = 0                  # Training seed: validation split, init and shuffling derive
                                   # from it (and the subject split while protocol.split_seed=-1).
  config.cache_dir = ""            # Stage cache; "" -> $LASCA_JAX_CACHE or ~/.cache/lasca_jax.
  config.compilation_cache = ""    # JAX persistent compilation cache; "" -> <that cache>/xla,
                                   # "none" -> off (JAX_COMPILATION_CACHE_DIR, if set, wins).
  config.model_label = ""          # Row label in tables; "" -> derived ("Features", "MPNet(F)").

  _data_and_features(config)
  _text(config)
  _model_pairs_protocol(config)
  _train(config)
  _sweep(config)
  return config


def _data_and_features(config: ml_collections.ConfigDict) -> None:
  """The dataset and its windows."""
  # Dataset: `name` picks the module lasca_jax.data.datasets.<name>; other fields are its own.
  config.data = ml_collections.ConfigDict()
  config.data.name = "synthetic"

  # Windows and features (Sec. 4.2).
  config.features = ml_collections.ConfigDict()
  config.features.modality = "multimodal"   # "visual" (58 face values), "audio" (15 MFCCs), "multimodal".
  config.features.window_seconds = 3.0      # Window length; the paper uses 3 and 5.
  config.features.min_valid_fraction = 0.5  # A window needs this fraction of frames with features
                                            # (per modality) and with labels, else it is dropped.
  config.features.clip = True               # Clip test-fold values to [0, 1] after train min-max.
  config.features.partial_windows = False   # False: only full (fixed-length) windows, as Sec. 4.2;
                                            # True: also a recording's trailing partial window
                                            # when it reaches min_valid_fraction.


def _text(config: ml_collections.ConfigDict) -> None:
  """Salience, lexicon, templates and the sentence encoder."""
  # Salience, lexicon, templates, text encoder (Sec. 3.1, App. B).
  config.text = ml_collections.ConfigDict()
  config.text.salience = "otsu"             # "otsu" (paper), "topk", or "threshold".
  config.text.salience_k = 5                # Features per modality kept by "topk".
  config.text.salience_threshold = 0.5      # Normalised value above which "threshold" keeps a feature.
  config.text.lexicon = "llm"               # "llm" (App. B tables 8-9), "feature_name" (Table 7),
                                            # "shuffled" (llm phrases permuted across features),
                                            # "dataset" (config.data.lexicon, else "llm"), or
                                            # a path to a JSON/CSV file mapping feature -> phrase.
  config.text.uncovered = "name"            # Features the lexicon lacks: "name" (feature-name phrase)
                                            # or "drop" (never described).
  config.text.lexicon_seed = 0              # Permutation seed of the "shuffled" lexicon.
  config.text.backbone = "all-MiniLM-L6-v2" # Sentence-transformer name (see lasca_jax.encoders.text) or path.
  config.text.model_path = ""               # Local model folder; overrides the name's default location.
  config.text.batch_size = 64               # Most prompts per encoder batch.
  config.text.token_budget = 8192           # Most padded tokens per encoder batch (prompts sorted
                                            # longest first); 0 -> batch_size prompts per batch.
  config.text.device = "auto"               # Torch device of the frozen encoder: "auto" (cuda when
                                            # torch sees a GPU, else cpu), "cpu", "cuda[:N]".
  config.text.precision = "auto"            # Encoder weights: "auto" (float16 on a GPU, float32 on
                                            # cpu; float32 for engine "jax"), "float32",
                                            # "float16", "bfloat16" (both engines; stored apart).
  config.text.long_prompts = "truncate"     # Prompts over the encoder's window: "truncate" (paper)
                                            # or "chunk" (split at phrase boundaries into pieces
                                            # that fit, encode each, mean-pool the embeddings).
  config.text.engine = "torch"              # What runs the encoder: "torch" (sentence-transformers)
                                            # or "jax" (lasca_jax.encoders.flax_encoder: BERT,
                                            # DistilBERT, RoBERTa and MPNet backbones, JAX's
                                            # devices; stored apart from torch's embeddings).
                                            # torch stays the default: JAX gives the same fold
                                            # accuracies, but on a CPU 0.92-1.30x torch compiled
                                            # and 1.05x cold, compiles each shape once, and
                                            # switching would re-encode every stored embedding.
                                            # docs/performance.md "The encoder in JAX".
  config.text.phrase_order = "feature"      # Phrases in a prompt: "feature" order (paper) or
                                            # "salience" (most salient first: a cut drops the weakest).
  config.text.salience_stats = "fold"       # Min-max before salience: "fold" (paper: each fold's
                                            # training windows), "recording" (each recording's own),
                                            # "dataset" (all windows). See docs/performance.md.
  config.text.random_seed = 0               # model.fusion="random_text": seed of the per-prompt vectors.
  config.text.random_norm = 0.0             # "random_text": their L2 norm; 0 -> the backbone's (1 for
                                            # the unit-norm backbones; others need a value).


def _model_pairs_protocol(config: ml_collections.ConfigDict) -> None:
  """The representation, the preference pairs and the protocol."""
  # Representation fed to the preference learner (Tables 3-4 rows).
  config.model = ml_collections.ConfigDict()
  config.model.fusion = "fused"             # "features" [x], "text" [s], "fused" [x || s],
                                            # "baseline": a frozen encoder's precomputed embeddings;
                                            # controls (lasca_jax/method/controls.py): "mask" [x || m] (the
                                            # salience mask), "random_text" [x || r] (a fixed random
                                            # vector per distinct prompt; nothing is encoded).
  config.model.baseline_dir = ""            # "baseline": folder of <recording_id>.npz embeddings.
  config.model.baseline_name = ""           # "baseline": row label, e.g. "VGGFace2".
  config.model.max_hidden = (250, 125)      # Hidden sizes are (min(d/2, 250), min(d/4, 125)).
  config.model.hidden_from = ""             # "" or "fused": zero-pad the input to the fused model's
                                            # size (features + text.backbone's dimension), so the MLP
                                            # has its hidden sizes and parameter count: the
                                            # capacity-matched control [x || 0].
  config.model.hidden_from_dim = 0          # > 0: derive the hidden sizes from this d (no padding).

  # Preference pairs (Sec. 3.3).
  config.pairs = ml_collections.ConfigDict()
  config.pairs.target = "arousal"           # "arousal" or "valence".
  config.pairs.margin = 0.1                 # Relative-change margin tau (0.1 or 0.2 in the paper).
  config.pairs.eps = 1e-3                   # Floor of the denominator max(|a_t|, eps).

  # Subject-independent evaluation protocol (Sec. 5.1).
  config.protocol = ml_collections.ConfigDict()
  config.protocol.name = "kfold"            # "kfold" (SEWA) or "random_splits" (Aff-Wild2 seeds).
  config.protocol.num_folds = 15            # Folds, or seeds for "random_splits".
  config.protocol.test_fraction = 0.2       # Test share of subjects per "random_splits" seed.
  config.protocol.split_seed = -1           # Seed of the subject split; -1 -> config.seed (so a
                                            # new training seed keeps the folds when this is set).


def _train(config: ml_collections.ConfigDict) -> None:
  """The preference learner's training."""
  # Preference learner training: sklearn MLPClassifier(max_iter=25, alpha=1, tol=1e-3,
  # early_stopping=True, n_iter_no_change=3, shuffle=True) semantics, written functionally.
  config.train = ml_collections.ConfigDict()
  config.train.max_epochs = 25
  config.train.learning_rate = 1e-3
  config.train.alpha = 1.0                  # L2 penalty (sklearn's alpha, scaled by 1/batch).
  config.train.tol = 1e-3
  config.train.patience = 3                 # sklearn's n_iter_no_change.
  config.train.validation_fraction = 0.1
  config.train.validation_grouping = "pair" # "pair": both orders of a pair on one side of the
                                            # validation split; "none": sklearn's plain split.
  config.train.batch_size = 200             # min(batch_size, n_train) as sklearn's "auto".
  # Remedies for a head that learns nothing on small window-to-window changes (departures from
  # the paper, off by default; docs/method.md "When the head learns nothing"):
  config.train.standardize = False          # Divide pair differences by their training-fold RMS.
  config.train.min_epochs = 0               # Early stopping may stop only after this many epochs.
  config.train.monitor = "accuracy"         # Early stopping on validation "accuracy" or "loss".
  config.model.head = "mlp"                 # "mlp" (paper) or "logistic": logistic regression on
                                            # the same pair differences (a linear baseline).
  config.model.logistic_c = 1.0             # The logistic head's inverse L2 strength (sklearn's C).
  config.train.select = ""                  # A grid chosen per fold on validation pairs, trained
                                            # in the same call: "alpha=1,0.1;standardize=false,true"
                                            # (alpha, learning_rate, standardize, min_epochs,
                                            # monitor); "" -> the settings above.
  config.train.devices = 0                  # Local devices the folds x configurations are
                                            # sharded over; 0 -> all of them.
  config.train.lanes = 0                    # Units vmapped together per device; 0 -> 1 on CPU
                                            # (fastest there), all of a device's on GPU/TPU.
  config.train.host_devices = 0             # CPU: XLA devices the cores become, so folds train
                                            # in parallel; 0 -> one per core, 1 -> one device.
                                            # Read by experiments/main.py and sweep.py at start.
  config.train.fast_compile = False         # CPU: compile the trainer at XLA's -O1, about half
                                            # the compile time; the last bits of the results
                                            # change (same code, same bits). False: bit-exact
                                            # with earlier releases.


def _sweep(config: ml_collections.ConfigDict) -> None:
  """The grid of experiments/sweep.py."""
  # Grid run by experiments/sweep.py (Tables 3-7); a single run ignores it.
  config.sweep = ml_collections.ConfigDict()
  config.sweep.modalities = ("visual", "audio", "multimodal")
  config.sweep.windows = (3.0, 5.0)
  config.sweep.margins = (0.1, 0.2)
  config.sweep.targets = ("arousal", "valence")
  config.sweep.models = ("features", "text", "fused")   # Rows: Features, backbone, backbone(F).
  config.sweep.backbones = (                 # The paper's five sentence transformers (Table 1).
      "all-mpnet-base-v2", "multi-qa-mpnet-base-dot-v1", "all-distilroberta-v1",
      "all-MiniLM-L12-v2", "multi-qa-distilbert-cos-v1")
  config.sweep.ablation_modalities = ("multimodal",)   # Where the ablation rows below are added.
  config.sweep.ablation_lexicons = ("feature_name",)   # Table 7 (add "shuffled" for Sec. 6).
  config.sweep.ablation_saliences = ()       # Sec. 6 alternatives, e.g. ("topk", "threshold").
  config.sweep.controls = ()                 # Control rows for sweep.ablation_modalities, any of
                                             # "mask", "random_text", "capacity" (lasca_jax/method/controls.py),
                                             # "logistic" (logistic regression on the features),
                                             # "tuned" (the features with sweep.tune_select).
  config.sweep.tune_select = "alpha=1,0.1,0.01;standardize=false,true"   # train.select of "tuned".
  config.sweep.baselines = ()                # Frozen encoders, "Name:modality:dir" (Tables 5-6).
  config.sweep.simulated_baselines = False   # Synthetic data only: simulate one encoder per modality.
  config.sweep.group_size = 0                # Equally shaped configurations per compiled call;
                                             # 0 -> 1 on CPU (measured faster there), 8 on GPU/TPU.
  config.sweep.lasca_label = ""              # LaScA row of Tables 5-6; "" -> first backbone (F).
