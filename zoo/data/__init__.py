"""The data layer: datasets, pair strategies, collation and the training loader.

- :mod:`.datasets` — the Dataset contract, lookups by name, in-memory lists, the epoch sampler;
- :mod:`.pairs` — pair strategies (samples → views and positives);
- :mod:`.collate` — views → one batch per tower (seeded augmentations, the ``Batch`` a step consumes);
- :mod:`.loader` — the DataLoader a recipe asks for;
- :mod:`.inmemory` — ``zoo.train(dataset=…, model=…)`` with objects instead of names;
- :mod:`.vector` — the core's own ``vector`` modality and the quickstart datasets.

``from zoo.data import ZooDataset, create_dataset, …`` is the public path of the dataset contract.
"""
from __future__ import annotations

from zoo.data.datasets import (  # noqa: F401
                               EpochSampler,
                               Indexed,
                               ListDataset,
                               ZooDataset,
                               as_dataset,
                               create_dataset,
                               file_extensions,
                               list_datasets,
                               load_value,
                               modality_of_file,
)
