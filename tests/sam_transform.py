"""Runs the SAM transform (aws-sam-translator) on a template, offline.

Usage: python sam_transform.py TEMPLATE [Name=Value ...]

Prints the CloudFormation template the transform produces, as JSON, on
standard output. Parameters not given take their Default, as CloudFormation
would. Needs no AWS account and makes no AWS call: the region is fixed, and
managed policy names resolve from a static map instead of IAM.
Used by tests/tests/template.rs.
"""

import json
import os
import sys

# The translator asks boto3 for the region (for ARNs and partitions); it must
# never look for credentials or instance metadata.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

try:
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse
except ImportError as error:  # pragma: no cover - reported to the test
    sys.exit(
        "aws-sam-translator is not installed for %s (run bash .ci/setup): %s"
        % (sys.executable, error)
    )


class StaticManagedPolicies:
    """Stands in for the IAM ListPolicies lookup the translator would make.

    The template gives every function its own role, so no managed policy
    should be needed; these few names resolve so that a template that
    regresses to SAM's Policies still transforms, and the test can say what
    went wrong.
    """

    def load(self):
        return {
            name: "arn:aws:iam::aws:policy/service-role/" + name
            for name in (
                "AWSLambdaBasicExecutionRole",
                "AWSLambdaSQSQueueExecutionRole",
                "AWSXrayWriteOnlyAccess",
            )
        }


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: sam_transform.py TEMPLATE [Name=Value ...]")
    with open(argv[1], encoding="utf-8") as f:
        template = yaml_parse(f.read())
    parameters = {}
    for pair in argv[2:]:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit("parameter %r is not Name=Value" % pair)
        parameters[name] = value
    # `sam build` / `sam package` replace the local CodeUri with the S3
    # location of the uploaded artifact; the transform only accepts S3.
    code = "s3://foxrelay-artifacts/code.zip"
    function_globals = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in function_globals:
        function_globals["CodeUri"] = code
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in properties:
            properties["CodeUri"] = code
    result = transform(template, parameters, StaticManagedPolicies())
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
