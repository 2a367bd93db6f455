"""nnU-Net segmentation: model folders, training in a child process, prediction, batches."""
