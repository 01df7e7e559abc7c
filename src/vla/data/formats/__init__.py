"""Source formats -> our store: LeRobot v2.1/v3.0, RLDS/TFDS, MCAP (ROS 2, JSON, protobuf), HDF5.

    from vla.data.formats.convert import convert      # the module convert.py holds the function convert
    report = convert("bridge_dataset/", "out/", provenance="prov.yaml", workers=2)

One module per format (`rlds`, `mcap`, `hdf5`, `lerobot`, with `tfrecord`/`example` for TFRecord and
tf.train.Example), `align` for time alignment, `convert` for the pipeline, `standardize_run` for the
`vla standardize` entry point, `commands` for the CLI (`vla convert`, `vla inspect`, `vla standardize`).
The standardization transforms live in `vla.data.standardize`. This package imports nothing itself.
"""
