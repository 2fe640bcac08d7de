"""The pallet-registry Helm chart's values contract.

:mod:`pallet_dev.chart.values` holds the pydantic model of the chart's values (the
one source of truth; ``charts/pallet-registry/values.schema.json`` is generated from
it by :mod:`pallet_dev.chart.schema`) and the loader that merges values files and
``--set`` overrides the way Helm does, then validates them before anything is created.

This package module imports nothing heavy: import the submodules where needed.
"""
