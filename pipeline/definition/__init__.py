"""From config to pipeline definition JSON, and the checks, drawings and diffs of it. No AWS call."""
