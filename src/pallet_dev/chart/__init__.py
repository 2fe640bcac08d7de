"""The pallet-registry Helm chart's values contract.

Modules, each importing only those listed before it:

- :mod:`~pallet_dev.chart.constants`: the chart's names, defaults and field patterns;
- :mod:`~pallet_dev.chart.model_base`, :mod:`~pallet_dev.chart.model_registry` and
  :mod:`~pallet_dev.chart.model`: the pydantic model of the values (the one source of truth);
- :mod:`~pallet_dev.chart.schema`: ``charts/pallet-registry/values.schema.json``, generated
  from the model;
- :mod:`~pallet_dev.chart.helm_merge`: Helm's merge of values files and ``--set`` parsing;
- :mod:`~pallet_dev.chart.report`: the wording of values errors;
- :mod:`~pallet_dev.chart.loader`: ``load_values``, which merges the values the way Helm
  does and validates them before anything is created.

:mod:`~pallet_dev.chart.release` (the release fingerprint) serves both charts.
This package module imports nothing heavy: import the submodules where needed.
"""
