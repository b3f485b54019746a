"""The queue worker: the Huey instance, its task, and what a worker does with one job."""
