"""``CreateModel`` → ``EndpointConfig`` → ``Deploy``: the registered package on the staging endpoint.

Production is never deployed from the pipeline; ``dogpipe deploy --stage prod`` takes only an Approved
package. The endpoint config name carries the execution id because configs are immutable.
"""

from __future__ import annotations

from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join
from sagemaker.mlops.workflow.endpoint_step import EndpointConfigStep, EndpointStep
from sagemaker.mlops.workflow.model_step import ModelStep

from pipeline.config.deploy_names import VARIANT, data_capture_request
from steps.common import BuildContext, api_retry_policies
from steps.register import model_step_arguments


def build_deploy(ctx: BuildContext, register: ModelStep) -> list:
    deploy = ctx.cfg.deploy
    session = ctx.session
    create_args = model_step_arguments(
        session,
        lambda: session.create_model(
            name=f"{deploy.staging_endpoint}-model",
            role=ctx.role_arn,
            container_defs=[{"ModelPackageName": register.properties.ModelPackageArn}],
        ),
    )
    model = ModelStep(name="CreateModel", step_args=create_args, retry_policies=api_retry_policies(ctx.cfg))
    config_args = session.create_endpoint_config(
        name=Join(on="-", values=[deploy.staging_endpoint, ExecutionVariables.PIPELINE_EXECUTION_ID]),
        production_variants=[
            {
                "VariantName": VARIANT,
                "ModelName": model.properties.ModelName,
                "InitialInstanceCount": deploy.initial_instance_count,
                "InstanceType": deploy.instance_type,
            }
        ],
        data_capture_config_dict=data_capture_request(ctx.cfg),
    )
    # No RetryPolicies: the pipeline schema's EndpointConfig step has none.
    endpoint_config = EndpointConfigStep(name="EndpointConfig", step_args=config_args)
    endpoint = EndpointStep(
        name="Deploy",
        step_args=session.create_endpoint(
            endpoint_name=deploy.staging_endpoint,
            config_name=endpoint_config.properties.EndpointConfigName,
        ),
    )
    return [model, endpoint_config, endpoint]
