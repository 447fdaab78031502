"""The batch layer under every verb (``matte``, ``trimap``, ``composite``, ``eval``, ``video``); no torch here.

::

    items = expand_inputs(["photos/", "extra/*.jpg", "one.png"])          # inputs.py: natural order, Item.rel
    pair(items, "trimaps/", "trimap")                                      # pairing.py: by stem; misses -> Item.problem
    plan = OutputPlan(output="out/", template="{relpath}_{type}.{ext}")    # plan.py: names, collisions, re-runs
    runner = BatchRunner(verb="matte", model="closed-form", report="run.json")
    code = runner.run(items, process, planned=lambda it: [...])           # runner.py: errors, skip, signals, report

Verb modules in ``mattecli.cli`` only declare options and call these.
"""
from .checks import DEVICES, PRECISIONS, check_device_precision, check_report
from .inputs import Item, expand_inputs, listed, natural_key, output_excludes
from .pairing import INPUT_SUFFIXES, SUFFIXES, drop_partner_inputs, pair, strip_suffix
from .plan import (FIELDS, OutputPlan, check_plan, check_single_file, check_stdout, default_folder,
                   drop_previous_outputs, drop_run_outputs)
from .report import Record
from .runner import BatchRunner, Outcome, attempt, local_executor, planned_outputs

__all__ = [
    "DEVICES", "PRECISIONS", "check_device_precision", "check_report", "Item", "expand_inputs", "listed",
    "natural_key", "output_excludes", "INPUT_SUFFIXES", "SUFFIXES", "drop_partner_inputs", "pair", "strip_suffix", "FIELDS",
    "OutputPlan", "check_plan", "check_single_file", "check_stdout", "default_folder", "drop_previous_outputs", "drop_run_outputs", "Record",
    "BatchRunner", "Outcome", "attempt", "local_executor", "planned_outputs",
]
