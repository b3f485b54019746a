"""The job system: a job's record, life, files, storage, validation, limits, models and the service both edges call."""
