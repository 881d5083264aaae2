"""The SageMaker engine: AWS clients, the Pipelines API, executions, endpoints, logs, triggers."""
