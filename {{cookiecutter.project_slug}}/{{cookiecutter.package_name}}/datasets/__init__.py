"""The data sets, one plain module each; the bake keeps the one you chose, and ``data.py`` loads it.

Every module provides the same few names, which is all the DataModule needs:

- ``MEAN``, ``STD``: per-channel statistics of the images scaled to [0, 1], for normalisation.
- ``IMAGE_SIZE``: the side its images are resized to unless ``--data.image_size`` says otherwise.
- ``class_names(data_dir)``: the class names, index by index.
- ``prepare(data_dir)``: fetch what is missing, once per machine (``prepare_data``); raise ``errors.DataError``
  with what to do when it cannot.
- ``load(data_dir)``: the splits it has, ``"all"`` or ``"train"`` and ``"test"`` (and ``"val"``): each a
  pair of uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` held in memory, or a ``Dataset`` of
  ``(PIL image, label)`` read from disk. The DataModule splits off what is missing.
- ``augmentation(image_size)``: the random transform for training images, or None.

To add a data set, write a module with these names and point ``DATASET`` in ``data.py`` at it.
"""
