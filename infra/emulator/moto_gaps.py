"""Where moto's CloudFormation falls short of what the real service does with our templates, and the
smallest change inside the emulator process that closes each gap. Found by deploying the workspace;
each function names the symptom it fixes.

Every patch lives here so that the stacks stay as they deploy to AWS, and so that a moto upgrade has
one file to re-check (`tests/emulator` fails loudly if a patch point moves). `install()` is called once,
in the emulator's own process, before its server starts; never in the test process itself.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from functools import cache
from typing import Any

from moto.cloudformation import models as cfn_models
from moto.cloudformation import parsing
from moto.cloudformation import responses as cfn_responses
from moto.cloudformation.exceptions import ValidationError
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult
from moto.ec2 import models as ec2_models
from moto.ecs import models as ecs_models
from moto.elb import models as elb_models
from moto.elbv2 import models as elbv2_models
from moto.iam import models as iam_models
from moto.kms import models as kms_models
from moto.logs import models as logs_models
from moto.s3 import models as s3_models
from moto.s3.exceptions import BucketNotEmpty
from moto.ssm import models as ssm_models
from moto.utilities.utils import get_partition

from infra.emulator import iam_gaps, patching

_installed = False


def install(port: int) -> None:
    """Apply every patch (idempotent). `port` is where the server listens: custom resources are
    answered through it, as a provider Lambda would."""
    global _installed
    if _installed:
        return
    for patch in (
        _cloudformation_shapes,
        _get_stack_output,
        _record_unsupported_types,
        _elbv2_full_names,
        _keep_resources_moto_cannot_update,
        _bucket_update_keeps_name,
        _previous_value_of_defaulted_parameters,
        _stack_deletion,
        _delete_what_moto_leaves,
        _container_insights_log_group,
        _non_empty_bucket_fails_its_delete,
        _stage_certificate_exists,
    ):
        patch()
    _answer_custom_resources(port)
    iam_gaps.install()
    _installed = True


def _wrap_classmethod(cls: type, name: str, before: Callable[..., None]) -> None:
    """Run `before` on the arguments of a classmethod, then the original. moto passes them by position
    or by name, so `before` names its parameters as moto's method does."""
    original = patching.classmethod_function(cls, name)

    def wrapper(klass: type, *args: Any, **kwargs: Any) -> Any:
        before(*args, **kwargs)
        return original(klass, *args, **kwargs)

    patching.replace(cls, name, classmethod(wrapper))


def _cloudformation_shapes() -> None:
    """Template properties in CloudFormation's shape that moto reads in its API's shape: a KMS key's
    tags `[{Key, Value}]` (moto wants TagKey/TagValue: KeyError, HTTP 500) and its policy as an object
    (moto stores it as is, then every DescribeKey fails parsing it as a JSON string); an SSM parameter's
    tags as a `{key: value}` map (moto wants a list: TypeError)."""

    def kms_key(resource_name: str, cloudformation_json: dict[str, Any], *_: Any, **__: Any) -> None:
        props = cloudformation_json.get("Properties", {})
        props["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in props.get("Tags", [])]
        if isinstance(props.get("KeyPolicy"), dict):
            props["KeyPolicy"] = json.dumps(props["KeyPolicy"])

    def ssm_tags(resource_name: str, cloudformation_json: dict[str, Any], *_: Any, **__: Any) -> None:
        props = cloudformation_json.get("Properties", {})
        if isinstance(props.get("Tags"), dict):
            props["Tags"] = [{"Key": k, "Value": v} for k, v in props["Tags"].items()]

    _wrap_classmethod(kms_models.Key, "create_from_cloudformation_json", kms_key)
    _wrap_classmethod(ssm_models.Parameter, "create_from_cloudformation_json", ssm_tags)


def _get_stack_output() -> None:
    """`Fn::GetStackOutput` (CDK's weak cross-stack references, the flag in cdk.json) is unknown to
    moto, which passes the dict on as a value (MalformedPolicyDocument). Resolve it from the named
    stack's outputs, as CloudFormation does; a missing stack or output is a template error."""
    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, dict) and "Fn::GetStackOutput" in resource_json:
            spec = original(resource_json["Fn::GetStackOutput"], resources_map)
            region = spec.get("Region") or resources_map._region_name
            backend = cfn_models.cloudformation_backends[resources_map._account_id][region]
            stack = backend.get_stack(spec["StackName"])
            # its `in` would parse a missing key; an output whose condition is false parses to None
            output = stack.output_map[spec["OutputName"]] if spec["OutputName"] in list(stack.output_map) else None
            if output is None:
                raise ValidationError(
                    spec["StackName"], f"Stack {spec['StackName']} has no output {spec['OutputName']}"
                )
            return output.value
        return original(resource_json, resources_map)

    parsing.clean_json = clean_json  # the recursion inside moto looks the name up in the module


class _RecordedResource:
    """A resource of a type moto does not emulate: it is recorded (physical ID, ARN) so that references
    to it resolve and the stack lifecycle goes on; nothing behind it exists. moto itself skips such
    resources, which leaves `Ref`/`Fn::GetAtt` to them failing (AttributeError, HTTP 500)."""

    __module__ = "infra.emulator.moto_gaps"  # moto's model registry keys models by this module path

    def __init__(self, name: str, resource_type: str, account_id: str, region: str) -> None:
        self.name, self.resource_type, self.account_id, self.region = name, resource_type, account_id, region

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    def get_cfn_attribute(self, attr: str) -> str:
        if attr.endswith("Arn"):
            _, service, kind = self.resource_type.split("::")
            return f"arn:aws:{service.lower()}:{self.region}:{self.account_id}:{kind.lower()}/{self.name}"
        return f"{self.name}.{attr}"

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> _RecordedResource:
        return cls(resource_name, kwargs["ResourceType"], account_id, region_name)

    def delete(self, account_id: str, region: str) -> None:
        """Nothing exists behind a recorded resource."""


@cache
def recorded_model(resource_type: str) -> type[CloudFormationModel]:
    """A model class for one unemulated type (moto looks models up by `cloudformation_type()`)."""
    return type(
        f"Recorded_{resource_type.replace('::', '_')}",
        (_RecordedResource, CloudFormationModel),
        {
            "__module__": _RecordedResource.__module__,
            "cloudformation_type": staticmethod(lambda: resource_type),
            "cloudformation_name_type": staticmethod(lambda: ""),
        },
    )


def native_types() -> frozenset[str]:
    """The resource types moto's CloudFormation emulates itself (before `install`)."""
    return frozenset(
        model.cloudformation_type() for model in parsing.get_model_list() if not issubclass(model, _RecordedResource)
    )


def _record_unsupported_types() -> None:
    original = parsing.resource_class_from_type

    def resource_class_from_type(resource_type: str) -> Any:
        if resource_type.startswith("AWS::") and resource_type not in parsing.get_model_map():
            return recorded_model(resource_type)
        return original(resource_type)

    parsing.resource_class_from_type = resource_class_from_type


def _elbv2_full_names() -> None:
    """`LoadBalancerFullName` and `TargetGroupFullName` (the CloudWatch dimensions of the service's
    alarms) are not implemented by moto; both are the tail of the ARN."""
    load_balancer_attribute = elbv2_models.FakeLoadBalancer.get_cfn_attribute

    def load_balancer(self: elbv2_models.FakeLoadBalancer, name: str) -> Any:
        if name == "LoadBalancerFullName":
            return self.arn.split(":loadbalancer/", 1)[1]
        return load_balancer_attribute(self, name)

    def target_group_has(cls: type[elbv2_models.FakeTargetGroup], name: str) -> bool:
        return name == "TargetGroupFullName"

    def target_group(self: elbv2_models.FakeTargetGroup, name: str) -> str:
        return self.arn.split(":", 5)[5]

    patching.replace(elbv2_models.FakeLoadBalancer, "get_cfn_attribute", load_balancer)
    patching.replace(elbv2_models.FakeTargetGroup, "has_cfn_attr", classmethod(target_group_has))
    patching.add(elbv2_models.FakeTargetGroup, "get_cfn_attribute", target_group)


def _stage_certificate_exists() -> None:
    """int and prd serve HTTPS with the certificate their config names (`service.certificate_arn`), which the
    team issues in ACM beforehand (DNS validation, which no emulator can do, and whose ARN ACM chooses).
    moto's load balancer refuses a listener whose certificate its ACM does not hold: an ACM certificate ARN
    of the emulator's own account and region counts as issued there; any other is still refused."""
    original = elb_models.register_certificate  # elbv2's models import it from elb's, and call it by their name

    def register_certificate(account_id: str, region: str, arn_certificate: str, arn_user: str) -> None:
        if not arn_certificate.startswith(f"arn:{get_partition(region)}:acm:{region}:{account_id}:certificate/"):
            original(account_id=account_id, region=region, arn_certificate=arn_certificate, arn_user=arn_user)

    patching.replace(elbv2_models, "register_certificate", register_certificate)


def _keep_resources_moto_cannot_update() -> None:
    """On a stack update, moto replaces a modified resource whose type it cannot update (a KMS key
    whose tags changed) by None: it vanishes from the stack, and the next `Fn::GetAtt` to it fails.
    Keep the resource as it was: the emulator applies updates only where moto implements them."""
    original = parsing.parse_and_update_resource

    def parse_and_update_resource(
        logical_id: str, resource_json: Any, resources_map: Any, account_id: str, region_name: str
    ) -> Any:
        updated = original(logical_id, resource_json, resources_map, account_id, region_name)
        return updated if updated is not None else resources_map[logical_id]

    parsing.parse_and_update_resource = parse_and_update_resource


def _bucket_update_keeps_name() -> None:
    """moto's bucket update reads `BucketName` from the properties to re-tag it (KeyError when the
    name is CloudFormation's, as ours are); the name of a bucket being updated in place is its own."""

    def default_name(
        original_resource: Any, new_resource_name: str, cloudformation_json: dict[str, Any], *_: Any, **__: Any
    ) -> None:
        cloudformation_json["Properties"].setdefault("BucketName", original_resource.name)

    _wrap_classmethod(s3_models.FakeBucket, "update_from_cloudformation_json", default_name)


def _previous_value_of_defaulted_parameters() -> None:
    """The CDK CLI updates a stack with `UsePreviousValue` for `BootstrapVersion`, a parameter that
    took its default; moto stores only parameters that were passed, so the update fails (KeyError).
    CloudFormation's previous value of such a parameter is its default: let the template give it."""
    original = cfn_models.CloudFormationBackend._resolve_update_parameters

    def resolve(self: Any, instance: Any, incoming_params: list[dict[str, Any]]) -> dict[str, str]:
        kept = [
            p
            for p in incoming_params
            if not (p.get("UsePreviousValue") and p["ParameterKey"] not in instance.parameters)
        ]
        return original(self, instance, kept)

    patching.replace(cfn_models.CloudFormationBackend, "_resolve_update_parameters", resolve)


def _stack_deletion() -> None:
    """Two differences in how a stack is deleted. moto stores `EnableTerminationProtection` but deletes
    protected stacks anyway, and has no `UpdateTerminationProtection`; prd relies on both: refuse the
    delete with CloudFormation's message, and let an operator turn the protection off. And moto deletes
    a stack's resources inside the DeleteStack call, after taking the stack out of its list: when one
    cannot be deleted, the caller gets the error and the stack disappears with its resources still
    there. CloudFormation accepts the request, and the stack stays, DELETE_FAILED, for the caller's
    waiter to report, with a DELETE_FAILED event (and its reason) for each resource that would not go
    (moto keeps only its last error, so each resource's error is recorded as it fails), and lists only
    those resources."""
    original = cfn_models.CloudFormationBackend.delete_stack
    delete_resource = parsing.ResourceMap._delete_resource

    def record_failure(self: Any, parsed_resource: Any, resource_json: dict[str, Any]) -> None:
        try:
            delete_resource(self, parsed_resource, resource_json)
        except Exception as exc:
            self.__dict__.setdefault("delete_failures", {})[parsed_resource.logical_resource_id] = exc
            raise

    patching.replace(parsing.ResourceMap, "_delete_resource", record_failure)

    def delete_stack(self: Any, name_or_stack_id: str) -> None:
        stack = next((s for s in self.stacks.values() if name_or_stack_id in (s.name, s.stack_id)), None)
        if stack is None:
            return original(self, name_or_stack_id)
        if stack.enable_termination_protection:
            raise ValidationError(
                stack.name, f"Stack [{stack.name}] cannot be deleted while TerminationProtection is enabled"
            )
        stack.resource_map.__dict__.pop("delete_failures", None)
        try:
            original(self, name_or_stack_id)
        except Exception as exc:
            stack.status = "DELETE_FAILED"
            failures = stack.resource_map.__dict__.get("delete_failures", {})
            remaining = stack.resource_map._parsed_resources
            for logical_id, error in failures.items():
                if logical_id in remaining:
                    stack.events.append(
                        cfn_models.Event(
                            stack.stack_id,
                            stack.name,
                            logical_id,
                            getattr(remaining[logical_id], "physical_resource_id", ""),
                            getattr(remaining[logical_id], "cf_resource_type", ""),
                            "DELETE_FAILED",
                            f"{type(error).__name__}: {error}",
                            None,
                        )
                    )
            failed = sorted(set(failures) & set(remaining))
            stack._add_stack_event(
                "DELETE_FAILED", resource_status_reason=f"The following resource(s) failed to delete: {failed}. {exc}"
            )
            self.stacks[stack.stack_id] = stack
            self.deleted_stacks.pop(stack.stack_id, None)

    def update_termination_protection(self: Any) -> Any:
        stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
        stack.enable_termination_protection = str(self._get_param("EnableTerminationProtection")).lower() == "true"
        return ActionResult({"StackId": stack.stack_id})

    def stack_resources(self: Any) -> Any:
        """A DELETE_FAILED stack lists what is left; moto's resource map would create the deleted ones
        again when listed (it parses any resource of the template it does not hold)."""
        if self.status == "DELETE_FAILED":
            return [r for r in self.resource_map._parsed_resources.values() if not isinstance(r, str)]
        return original_stack_resources(self)

    original_stack_resources = patching.property_getter(cfn_models.Stack, "stack_resources")
    patching.replace(cfn_models.Stack, "stack_resources", property(stack_resources))
    patching.replace(cfn_models.CloudFormationBackend, "delete_stack", delete_stack)
    patching.add(cfn_responses.CloudFormationResponse, "update_termination_protection", update_termination_protection)


def _delete_what_moto_leaves() -> None:
    """moto creates these from a template but never deletes them with the stack: the VPC they hang on
    cannot go (DependencyViolation), and a destroyed workspace leaves a network, an ECS cluster and the
    storage stack's managed policies behind (int's and prd's roles have managed policies only: detached first)."""

    def ec2(account_id: str, region: str) -> Any:
        return ec2_models.ec2_backends[account_id][region]

    def association(resource: Any, account_id: str, region: str) -> None:
        table = ec2(account_id, region).get_route_table(resource.route_table_id)
        for association_id, subnet_id in list(table._associations.items()):
            if subnet_id == resource.subnet_id:
                ec2(account_id, region).disassociate_route_table(association_id)

    def route(resource: Any, account_id: str, region: str) -> None:
        ec2(account_id, region).delete_route(resource.route_table.id, resource.destination_cidr_block)

    def managed_policy(resource: Any, account_id: str, region: str) -> None:
        """As CloudFormation does (IAM refuses to delete an attached policy): detach it from the roles, users and
        groups it names, then delete it; otherwise each of those roles' deletes fails with DeleteConflict."""
        iam = iam_models.iam_backends[account_id][get_partition(region)]
        for role in iam.roles.values():
            if resource.arn in role.managed_policies:
                iam.detach_role_policy(resource.arn, role.name)
        for user in iam.users.values():
            if resource.arn in user.managed_policies:
                iam.detach_user_policy(resource.arn, user.name)
        for group in iam.groups.values():
            if resource.arn in group.managed_policies:
                iam.detach_group_policy(resource.arn, group.name)
        iam.delete_policy(resource.arn)

    deleters: dict[type, Callable[[Any, str, str], object]] = {
        ec2_models.route_tables.Route: route,
        ec2_models.subnets.SubnetRouteTableAssociation: association,
        ec2_models.route_tables.RouteTable: lambda r, a, g: ec2(a, g).delete_route_table(r.id),
        ec2_models.vpn_gateway.VPCGatewayAttachment: lambda r, a, g: ec2(a, g).detach_internet_gateway(
            r.gateway_id, r.vpc_id
        ),
        ec2_models.internet_gateways.InternetGateway: lambda r, a, g: ec2(a, g).delete_internet_gateway(r.id),
        ec2_models.flow_logs.FlowLogs: lambda r, a, g: ec2(a, g).delete_flow_logs([r.id]),
        elbv2_models.FakeTargetGroup: lambda r, a, g: elbv2_models.elbv2_backends[a][g].delete_target_group(r.arn),
        ecs_models.Service: lambda r, a, g: ecs_models.ecs_backends[a][g].delete_service(r.cluster_name, r.name, True),
        ecs_models.Cluster: lambda r, a, g: ecs_models.ecs_backends[a][g].delete_cluster(r.name),
        ecs_models.TaskDefinition: lambda r, a, g: ecs_models.ecs_backends[a][g].deregister_task_definition(r.arn),
        iam_models.ManagedPolicy: managed_policy,
    }
    for model, deleter in deleters.items():
        patching.add(model, "delete", _already_gone_is_deleted(deleter))  # moto's stack delete calls it


def _non_empty_bucket_fails_its_delete() -> None:
    """moto's stack deletion skips a bucket that still holds objects and reports the stack deleted: the
    bucket leaks, unseen. CloudFormation fails the bucket's delete ("The bucket you tried to delete is not
    empty") and leaves the stack DELETE_FAILED; so does the emulator."""
    original = patching.classmethod_function(s3_models.FakeBucket, "delete_from_cloudformation_json")

    def delete(
        klass: type[s3_models.FakeBucket],
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> None:
        backend = s3_models.s3_backends[account_id][get_partition(region_name)]
        bucket = backend.buckets.get(resource_name)
        if bucket is not None and bucket.keys:
            raise BucketNotEmpty(resource_name)
        original(klass, resource_name, cloudformation_json, account_id, region_name)

    patching.replace(s3_models.FakeBucket, "delete_from_cloudformation_json", classmethod(delete))


def _container_insights_log_group() -> None:
    """ECS creates `/aws/ecs/containerinsights/<cluster>/performance` when a cluster with Container Insights
    on first reports; moto ignores a template's `ClusterSettings` and reports nothing, so a destroy that
    leaves the group behind would pass unseen. Create the group with such a cluster, as that report does."""
    original = patching.classmethod_function(ecs_models.Cluster, "create_from_cloudformation_json")

    def create(
        klass: type[ecs_models.Cluster],
        /,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        cluster = original(klass, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        settings = cloudformation_json.get("Properties", {}).get("ClusterSettings", [])
        if any(s.get("Name") == "containerInsights" and s.get("Value") in ("enabled", "enhanced") for s in settings):
            logs = logs_models.logs_backends[account_id][region_name]
            group = f"/aws/ecs/containerinsights/{cluster.name}/performance"
            if group not in logs.groups:
                logs.create_log_group(group, tags={})
        return cluster

    patching.replace(ecs_models.Cluster, "create_from_cloudformation_json", classmethod(create))
    update = patching.classmethod_function(ecs_models.Cluster, "update_from_cloudformation_json")

    def update_in_place(
        klass: type[ecs_models.Cluster],
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        """moto replaces a cluster whose name CloudFormation generated at every update (it draws a new
        name), leaving the old cluster's Container Insights group; CloudFormation replaces a cluster only
        when its `ClusterName` changes."""
        if "ClusterName" not in cloudformation_json.get("Properties", {}):
            new_resource_name = original_resource.name
        return update(
            klass,
            original_resource=original_resource,
            new_resource_name=new_resource_name,
            cloudformation_json=cloudformation_json,
            account_id=account_id,
            region_name=region_name,
        )

    patching.replace(ecs_models.Cluster, "update_from_cloudformation_json", classmethod(update_in_place))


def _already_gone_is_deleted(deleter: Callable[[Any, str, str], object]) -> Callable[[Any, str, str], None]:
    """Deleting what is no longer there succeeds, as in CloudFormation (a route goes with its table)."""

    def delete(resource: Any, account_id: str, region: str) -> None:
        try:
            deleter(resource, account_id, region)
        except Exception as exc:
            if "NotFound" not in f"{getattr(exc, 'code', '')} {type(exc).__name__}":
                raise

    return delete


def _answer_custom_resources(port: int) -> None:
    """moto hands a custom resource's event to its Lambda, which it would run in Docker; nothing here
    answers, and the stack stays CREATE_IN_PROGRESS for ever. Answer as CDK's providers do when they
    succeed: a PUT of the JSON response to the callback URL. Only after moto has created the rest of the
    stack: answering earlier makes moto create the remaining resources twice, in two threads."""
    original = cfn_models.Stack.create_resources

    def create_resources(self: Any) -> None:
        original(self)
        for logical_id, resource in list(self.custom_resources.items()):
            if resource.is_created():
                continue
            body = {
                "Status": "SUCCESS",
                "StackId": self.stack_id,
                "RequestId": resource.request_id,
                "LogicalResourceId": logical_id,
                "PhysicalResourceId": resource.resource_name,
                "Data": {},
            }
            request = urllib.request.Request(
                f"http://localhost:{port}/cloudformation_{self.region_name}/cfnresponse?stack={self.stack_id}",
                data=json.dumps(body).encode(),
                method="PUT",
                # moto takes the region of a request from its user agent when the URL has none
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": f"custom-resource region/{self.region_name}",
                },
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (the response URL CloudFormation sent: http)
                response.read()

    patching.replace(cfn_models.Stack, "create_resources", create_resources)
