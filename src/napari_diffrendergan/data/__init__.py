"""Data in and out of the pipeline: real-scan patch sets, sample data, synthetic pairs and the
nnU-Net datasets they form."""
