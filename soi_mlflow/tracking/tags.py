"""The names of the ``soi.*`` run tags, in one place (docs/design.md, "Run conventions").

Every tag the package writes or reads is named here, grouped by the runs that carry it;
code refers to these constants, never to the strings. ``soi_tags`` (``tracking/run.py``)
builds ``soi.<name>`` from keyword names, so a tag written through it is listed here too.

A study is found from its parent run, tagged ``STUDY`` with the study's kind; its children
are the runs whose ``PARENT_RUN_ID`` (MLflow's own tag, set on every nested run) is the
parent's run id. No ``soi.*`` tag holds a parent's run id: runs logged before this rule
carry the parent's id in ``soi.study`` (``compare``, ``two_stage``, ``learning_curve``,
``noise_benchmark`` children), ``soi.study_run`` (``transfer`` children) or ``soi.views``
(the views study's runs); nothing reads those any more, so their studies re-analyse and
resume as new ones do.
"""

from __future__ import annotations

PREFIX = "soi."

# -- MLflow's own tags that the package reads ------------------------------------------
PARENT_RUN_ID = "mlflow.parentRunId"
"""the parent of a nested run (MLflow's): a study's children carry their parent's id"""

# -- every training run (``training/describe.py``, the recorder) -----------------------
AXIS = "soi.axis"
SETTING = "soi.setting"  # single | multi (``study`` on compare and noise_benchmark parents)
MEMBERS = "soi.members"  # sorted, comma-separated
OOD = "soi.ood"
SEED = "soi.seed"
STAGE = "soi.stage"
CAPTURE = "soi.capture"
TRACE_SCHEMA = "soi.trace_schema"
MODEL = "soi.model"
TRAINING_KEY = "soi.training_key"  # the digest of every setting that shapes a training
RECORDER = "soi.recorder"
HEARTBEAT = "soi.heartbeat"
RESUMED = "soi.resumed"
VERSION = "soi.version"  # set by the run-context provider (tracking/context.py)
END_REASON = "soi.end_reason"
NOT_IDENTIFIED = "soi.not_identified"  # the count of estimates the data do not determine

# -- a study's parent run (``studies/parent.py``) ---------------------------------------
STUDY = "soi.study"
"""the study's kind (``compare``, ``two_stage``, ...), on its parent run only"""
SEEDS = "soi.seeds"
MODE = "soi.mode"  # transfer: joint | sequential
SELECTION = "soi.selection"  # two_stage parent; on stage 2 and control: what they trained on
TARGET = "soi.target"  # learning_curve
AUX = "soi.aux"  # learning_curve
APPROX = "soi.approx"  # learning_curve parent and children
LATENT_TRAITS = "soi.latent_traits"  # transfer: why there is no PCA
TRANSFER_FACTORS = "soi.transfer_factors"  # transfer: what explains T, in one line
NOISE = "soi.noise"  # noise_benchmark: the planted noise setting
RECOMMEND_FROM = "soi.recommend_from"  # recommend: the transfer studies it learned from
RECOMMEND_VERDICT = "soi.recommend_verdict"  # recommend --verify: did the order hold

# -- a study's child runs ---------------------------------------------------------------
CURVE = "soi.curve"  # learning_curve: alone, or the auxiliary set (a+b)
TARGET_SIZE = "soi.target_size"
AUX_SIZE = "soi.aux_size"
SEQUENCE = "soi.sequence"  # sequential transfer: SOURCE>TARGET
CONTROL = "soi.control"  # two_stage: true on the random control
STAGE1_RUN_ID = "soi.stage1_run_id"  # two_stage: the run stage 2 started from
ROLE = "soi.role"  # noise_benchmark: detect | cross_validation
FOLD = "soi.fold"  # noise_benchmark's cross-validation fold
ARM = "soi.arm"  # recommend --verify: alone, top or bottom

# -- a comparison run (``analysis/two_runs.compare_runs``, ``into="new"``) ----------------
COMPARE_RUN_A = "soi.compare.run_a"  # the run the transitions start from
COMPARE_RUN_B = "soi.compare.run_b"  # the run they end in
