"""Properties of template.yaml and templates/database-account.yaml that the linters do not check.

Run by scripts/check-templates (in .venv-cfn). The templates are read with cfn-lint's own loader,
which understands the short-form tags (!Ref, !GetAtt, !Sub, ...). Conditions are not evaluated:
where a value is an Fn::If, both branches are checked, so a property holds in every deployment
mode.
"""

import copy
import ipaddress
import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "template.yaml"
DB_ACCOUNT = ROOT / "templates" / "database-account.yaml"

FUNCTIONS = {
    "ProvisionerFunction": "provisioner",
    "RotatorFunction": "rotator",
    "ConnectionTestFunction": "connection-test",
}

# The environment variables each binary reads (the template may set only these).
ALLOWED_ENV = {
    "RotatorFunction": {
        "ROTATION_STRATEGY", "PASSWORD_LENGTH", "EXCLUDE_CHARACTERS", "EXCLUDE_NUMBERS",
        "EXCLUDE_PUNCTUATION", "EXCLUDE_UPPERCASE", "EXCLUDE_LOWERCASE",
        "REQUIRE_EACH_INCLUDED_TYPE", "USERNAME_CHARACTER_LIMIT", "SECRETS_MANAGER_ENDPOINT",
        "DB_CA_BUNDLE",
    },
    "ProvisionerFunction": {"DB_CA_BUNDLE"},
    "ConnectionTestFunction": {
        "DATABASE_ACCOUNT_IAM_ROLE", "RDS_PROXY_APPLICATION_ENDPOINT", "DB_USERNAME", "DBNAME",
        "DB_PORT", "DB_ENGINE", "AUTH_MODE", "DB_SECRET_ARN", "DB_CA_BUNDLE", "EXTERNAL_ID",
        "ROLE_SESSION_NAME", "TEST_QUERY",
    },
}

# Actions whose APIs accept no resource-level permission: the only ones allowed on "*".
ACTIONS_WITHOUT_RESOURCES = {
    "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
    "ec2:DescribeSecurityGroups",
}

ROTATOR_SECRET_ACTIONS = {
    "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage",
}

NO_VALUE = {"Ref": "AWS::NoValue"}
MASTER_SECRET = {"Fn::GetAtt": ["Database", "MasterUserSecret.SecretArn"]}


# --- loading and walking ---------------------------------------------------------------------

def load(path):
    template, errors = decode(str(path))
    assert not errors, f"{path.name} does not parse: {errors}"
    # Plain dicts and lists, so that equality with literals is plain equality.
    return json.loads(json.dumps(template))


@pytest.fixture(scope="module")
def app():
    return load(APP)


@pytest.fixture(scope="module")
def db():
    return load(DB_ACCOUNT)


def resources(template, rtype=None):
    return {
        name: res for name, res in template["Resources"].items()
        if rtype is None or res["Type"] == rtype
    }


DROP = object()  # an AWS::NoValue branch: the key or item is absent


def variants(value):
    """Every concrete shape value can take, with each Fn::If resolved both ways (a key or list
    item whose branch is AWS::NoValue is absent in that variant)."""
    return [v for v in _variants(value) if v is not DROP]


def _variants(value):
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            _, yes, no = value["Fn::If"]
            out = []
            for branch in (yes, no):
                out.extend([DROP] if branch == NO_VALUE else _variants(branch))
            return out
        out = [{}]
        for key, item in value.items():
            out = [acc if opt is DROP else dict(acc, **{key: opt})
                   for acc in out for opt in _variants(item)][:256]
        return out
    if isinstance(value, list):
        out = [[]]
        for item in value:
            out = [acc if opt is DROP else acc + [opt]
                   for acc in out for opt in _variants(item)][:256]
        return out
    return [value]


def flat_items(value):
    """The items of a list property, with list-level Fn::If branches (both) flattened in."""
    items = []
    for v in variants(value):
        for item in (v if isinstance(v, list) else [v]):
            if item not in items:
                items.append(item)
    return items


def as_list(value):
    return value if isinstance(value, list) else [value]


def policy_documents(template):
    """(where, document) for every IAM and endpoint policy in the template."""
    for name, res in resources(template).items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            yield f"{name} trust", props["AssumeRolePolicyDocument"]
            for policy in props.get("Policies", []):
                yield f"{name}/{policy['PolicyName']}", policy["PolicyDocument"]
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield name, props["PolicyDocument"]
        elif res["Type"] == "AWS::EC2::VPCEndpoint" and "PolicyDocument" in props:
            yield f"{name} endpoint policy", props["PolicyDocument"]
        elif res["Type"] == "AWS::Serverless::Function":
            assert "Policies" not in props, f"{name}: use the explicit role, not SAM Policies"


def statements(document):
    return flat_items(document["Statement"])


def role_statements(template, role):
    props = template["Resources"][role]["Properties"]
    out = []
    for policy in props.get("Policies", []):
        out.extend(statements(policy["PolicyDocument"]))
    return out


def all_refs(value):
    """Every Ref, GetAtt and ${...} name that value mentions."""
    found = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref":
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0] if isinstance(item, list) else item.split(".")[0])
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                found.update(n.split(".")[0] for n in re.findall(r"\$\{([^}!]+)\}", text))
                if isinstance(item, list):
                    found.update(all_refs(item[1]))
            else:
                found.update(all_refs(item))
    elif isinstance(value, list):
        for item in value:
            found.update(all_refs(item))
    return found


def parameter_pattern(template, name):
    return re.compile(template["Parameters"][name]["AllowedPattern"])


# --- the functions ---------------------------------------------------------------------------

def test_sam_transform_and_three_functions(app):
    assert app["Transform"] == "AWS::Serverless-2016-10-31"
    functions = resources(app, "AWS::Serverless::Function")
    assert set(functions) == set(FUNCTIONS)
    assert not resources(app, "AWS::Lambda::Function")


@pytest.mark.parametrize("logical,binary", FUNCTIONS.items())
def test_function_runtime_architecture_and_build(app, logical, binary):
    glob = app["Globals"]["Function"]
    fn = app["Resources"][logical]
    props = {**glob, **fn["Properties"]}
    assert props["Runtime"] == "provided.al2023"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "bootstrap"
    assert fn["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert fn["Metadata"]["BuildProperties"]["Binary"] == binary
    # CodeUri is the workspace root, and the crate of the same name builds the binary.
    assert (ROOT / props["CodeUri"] / "Cargo.toml").is_file()
    cargo = (ROOT / "crates" / binary / "Cargo.toml").read_text()
    assert re.search(r'\[\[bin\]\]\s*\nname\s*=\s*"%s"' % re.escape(binary), cargo), cargo


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_function_logs_are_json_in_a_retained_log_group(app, logical):
    props = app["Resources"][logical]["Properties"]
    logging = props["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    group = app["Resources"][logging["LogGroup"]["Ref"]]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert app["Parameters"]["LogRetentionInDays"]["Default"] in \
        app["Parameters"]["LogRetentionInDays"]["AllowedValues"]
    # The role may write to that group only.
    role = props["Role"]["Fn::GetAtt"][0]
    log_statements = [s for s in role_statements(app, role)
                      if any(a.startswith("logs:") for a in as_list(s["Action"]))]
    assert log_statements, f"{role} cannot write logs"
    for stmt in log_statements:
        assert stmt["Resource"] == {"Fn::GetAtt": [logging["LogGroup"]["Ref"], "Arn"]}


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_function_memory_and_timeout_are_right_sized(app, logical):
    props = {**app["Globals"]["Function"], **app["Resources"][logical]["Properties"]}
    assert 128 <= props["MemorySize"] <= 512
    assert 10 <= props["Timeout"] <= 120


def test_provisioner_finishes_before_cloudformation_gives_up(app):
    timeout = app["Resources"]["ProvisionerFunction"]["Properties"]["Timeout"]
    service_timeout = int(app["Resources"]["DatabaseUsers"]["Properties"]["ServiceTimeout"])
    assert timeout < service_timeout <= 3600


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_function_environment_names_only_what_the_binary_reads(app, logical):
    env = app["Resources"][logical]["Properties"].get("Environment", {"Variables": {}})
    for variables in variants(env["Variables"]):
        unknown = set(variables) - ALLOWED_ENV[logical]
        assert not unknown, f"{logical} sets variables it never reads: {sorted(unknown)}"


def test_connection_test_modes(app):
    env = app["Resources"]["ConnectionTestFunction"]["Properties"]["Environment"]["Variables"]
    standalone, *application = variants(env)
    assert standalone["AUTH_MODE"] == "secret"
    assert standalone["DB_SECRET_ARN"] == {"Ref": "DBUserBSecret"}  # the read-only user
    for variant in application:
        assert variant["AUTH_MODE"] == "iam"
        assert {"DATABASE_ACCOUNT_IAM_ROLE", "EXTERNAL_ID", "DB_USERNAME", "DB_PORT"} <= set(variant)
    # Until the database account exists, the endpoint is unset (not empty), so the function
    # reports that it is not configured yet.
    assert [v.get("RDS_PROXY_APPLICATION_ENDPOINT") for v in application] == \
        [{"Ref": "ProxyEndpoint"}, None]


@pytest.mark.parametrize("logical", FUNCTIONS)
def test_functions_run_in_private_subnets_with_their_own_group(app, logical):
    vpc = app["Resources"][logical]["Properties"]["VpcConfig"]
    groups = vpc["SecurityGroupIds"]
    assert groups == [{"Ref": logical.replace("Function", "SecurityGroup")}]
    subnets = variants(vpc["SubnetIds"])
    assert [{"Ref": "PrivateSubnet1"}, {"Ref": "PrivateSubnet2"}] in subnets


# --- password policy: the secrets and the rotator agree -----------------------------------------

def test_exclude_characters_match_the_rotator_defaults(app):
    engines = app["Mappings"]["EngineSettings"]
    assert engines["mysql"]["ExcludeCharacters"] == "/@\"'\\"
    assert engines["postgres"]["ExcludeCharacters"] == ":/@\"'\\"
    rotator_env = app["Resources"]["RotatorFunction"]["Properties"]["Environment"]["Variables"]
    assert rotator_env["EXCLUDE_CHARACTERS"] == \
        {"Fn::FindInMap": ["EngineSettings", {"Ref": "Engine"}, "ExcludeCharacters"]}
    assert rotator_env["PASSWORD_LENGTH"] == "32"
    assert rotator_env["ROTATION_STRATEGY"] == {"Ref": "RotationStrategy"}


@pytest.mark.parametrize("secret,username", [("DBUserASecret", "DBUserAName"),
                                              ("DBUserBSecret", "DBUserBName")])
def test_user_secrets_are_generated_with_the_rotator_rules(app, secret, username):
    res = app["Resources"][secret]
    assert res["Type"] == "AWS::SecretsManager::Secret"
    gen = res["Properties"]["GenerateSecretString"]
    assert gen["PasswordLength"] == 32
    assert gen["GenerateStringKey"] == "password"
    assert gen["ExcludeCharacters"] == \
        {"Fn::FindInMap": ["EngineSettings", {"Ref": "Engine"}, "ExcludeCharacters"]}
    assert "SecretString" not in res["Properties"]
    assert username in all_refs(gen["SecretStringTemplate"])
    assert "KmsKeyId" in res["Properties"]


def test_mysql_clone_names_fit_the_username_limit(app):
    limit = int(app["Mappings"]["EngineSettings"]["mysql"]["UsernameCharacterLimit"])
    for name in ("DBUserAName", "DBUserBName"):
        longest = max_length_of(app["Parameters"][name]["AllowedPattern"])
        assert longest + len("_clone") <= limit, name


def max_length_of(pattern):
    # ^[a-z][a-z0-9_]{0,N}$ -> N + 1
    match = re.fullmatch(r"\^\[a-z\]\[a-z0-9_\]\{0,(\d+)\}\$", pattern)
    assert match, pattern
    return int(match.group(1)) + 1


# --- the users resource and rotation ---------------------------------------------------------

def test_database_users_resource_interface(app):
    users = app["Resources"]["DatabaseUsers"]
    assert users["Type"] == "Custom::DatabaseUsers"
    props = users["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["ProvisionerFunction", "Arn"]}
    assert props["MasterSecretArn"] == MASTER_SECRET
    assert props["Engine"] == {"Ref": "Engine"}
    assert props["DatabaseName"] == {"Ref": "DatabaseName"}
    listed = flat_items(props["Users"])
    by_secret = {u["SecretArn"]["Ref"]: u for u in listed if "SecretArn" in u}
    assert set(by_secret) == {"DBUserASecret", "DBUserBSecret"}
    assert by_secret["DBUserASecret"]["Privileges"] == "readwrite"
    assert by_secret["DBUserBSecret"]["Privileges"] == "readonly"
    for user in by_secret.values():
        assert user["Authentication"] == "password"
        assert user["RotationStrategy"] == {"Ref": "RotationStrategy"}
    iam_users = [u for u in listed if "SecretArn" not in u]
    assert iam_users == [{"Username": {"Ref": "IamUserName"}, "Authentication": "iam",
                          "Privileges": "readonly"}]
    assert set(app["Parameters"]["RotationStrategy"]["AllowedValues"]) == \
        {"single-user", "alternating-users"}


def test_users_wait_for_the_functions_network_path(app):
    # Without these references CloudFormation may invoke the provisioner before its endpoint,
    # route or security group rule exists (and delete them before the Delete request).
    path = all_refs(app["Resources"]["DatabaseUsers"]["Metadata"]["NetworkPath"])
    needed = {"SecretsManagerEndpoint", "RdsEndpoint", "S3GatewayEndpoint",
              "PrivateSubnet1RouteTableAssociation", "PrivateSubnet2RouteTableAssociation"}
    needed |= {name for name, res in resources(app, "AWS::EC2::SecurityGroupIngress").items()
               if "ConnectionTest" not in name}
    assert needed <= path, needed - path


def test_every_rotation_schedule_waits_for_the_users(app):
    schedules = resources(app, "AWS::SecretsManager::RotationSchedule")
    assert {s["Properties"]["SecretId"]["Ref"] for s in schedules.values()} == \
        {"DBUserASecret", "DBUserBSecret"}
    for name, schedule in schedules.items():
        depends = as_list(schedule.get("DependsOn", []))
        assert "DatabaseUsers" in depends, f"{name} may rotate before the users exist"
        assert "RotatorInvokePermission" in depends, f"{name} may start before Secrets Manager may invoke"
        props = schedule["Properties"]
        assert props["RotationLambdaARN"] == {"Fn::GetAtt": ["RotatorFunction", "Arn"]}
        assert "HostedRotationLambda" not in props
        assert props["RotationRules"] == {
            "ScheduleExpression": {"Ref": "RotationScheduleExpression"},
            "Duration": {"Ref": "RotationWindow"},
        }


def test_secrets_manager_invoke_permission_is_scoped_to_the_account(app):
    perms = [p["Properties"] for p in resources(app, "AWS::Lambda::Permission").values()]
    assert perms, "no permission for Secrets Manager to invoke the rotator"
    for perm in perms:
        assert perm["Principal"] == "secretsmanager.amazonaws.com"
        assert perm["FunctionName"] == {"Fn::GetAtt": ["RotatorFunction", "Arn"]}
        assert perm["SourceAccount"] == {"Ref": "AWS::AccountId"}


@pytest.mark.parametrize("expression", [
    "rate(30 days)", "rate(1 day)", "rate(999 days)", "rate(4 hours)", "rate(23 hours)",
    "cron(0 16 1,15 * ? *)", "cron(0 8 ? * MON *)",
])
def test_schedule_expression_accepts(app, expression):
    assert parameter_pattern(app, "RotationScheduleExpression").fullmatch(expression)


@pytest.mark.parametrize("expression", [
    "rate(4 hour)",  # the samples' defect
    "rate(1 days)", "rate(30 day)", "rate(0 days)", "rate(1000 days)", "rate(2 hours)",
    "rate(1 hour)", "rate(24 hours)", "rate(5 minutes)", "cron(0 16 1,15 * ?)", "30 days", "",
])
def test_schedule_expression_rejects(app, expression):
    assert not parameter_pattern(app, "RotationScheduleExpression").fullmatch(expression)


def test_schedule_defaults_are_valid(app):
    params = app["Parameters"]
    assert parameter_pattern(app, "RotationScheduleExpression").fullmatch(
        params["RotationScheduleExpression"]["Default"])
    window = parameter_pattern(app, "RotationWindow")
    assert window.fullmatch(params["RotationWindow"]["Default"])
    for good in ("1h", "4h", "24h"):
        assert window.fullmatch(good)
    for bad in ("0h", "25h", "2", "2 h", "120m"):
        assert not window.fullmatch(bad)


# --- IAM -------------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["app", "db"])
def test_no_wildcard_actions_and_star_resources_only_where_unavoidable(app, db, which):
    template = app if which == "app" else db
    for where, document in policy_documents(template):
        for stmt in statements(document):
            actions = as_list(stmt.get("Action", []))
            for action in actions:
                assert "*" not in action, f"{where}: wildcard action {action}"
            if "Resource" in stmt:
                for variant in variants(stmt["Resource"]):
                    if "*" in as_list(variant):
                        assert set(actions) <= ACTIONS_WITHOUT_RESOURCES, \
                            f"{where}: {actions} on '*'"


@pytest.mark.parametrize("which", ["app", "db"])
def test_no_secrets_manager_action_on_a_wildcard(app, db, which):
    template = app if which == "app" else db
    for where, document in policy_documents(template):
        for stmt in statements(document):
            if not any(a.startswith("secretsmanager:") for a in as_list(stmt.get("Action", []))):
                continue
            for variant in variants(stmt["Resource"]):
                for resource in as_list(variant):
                    assert isinstance(resource, dict), f"{where}: literal secret resource {resource}"
                    assert "*" not in json.dumps(resource), f"{where}: {resource}"


def test_nobody_uses_get_random_password(app):
    assert "GetRandomPassword" not in APP.read_text()


def test_rotator_secret_permissions(app):
    stmts = role_statements(app, "RotatorRole")
    on_users = [s for s in stmts
                if s.get("Resource") == [{"Ref": "DBUserASecret"}, {"Ref": "DBUserBSecret"}]]
    assert len(on_users) == 1 and set(on_users[0]["Action"]) == ROTATOR_SECRET_ACTIONS


def test_master_secret_is_read_only_and_only_for_provisioner_and_alternating_rotator(app):
    readers = {}
    for where, document in policy_documents(app):
        for stmt in statements(document):
            if MASTER_SECRET in as_list(stmt.get("Resource")):
                readers.setdefault(where.split("/")[0].split(" ")[0], set()).update(
                    as_list(stmt["Action"]))
    assert set(readers) <= {"ProvisionerRole", "RotatorRole", "SecretsManagerEndpoint"}
    assert {"ProvisionerRole", "RotatorRole"} <= set(readers)
    for actions in readers.values():
        assert actions <= {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    # The rotator's grant exists only with the alternating-users strategy.
    policy = app["Resources"]["RotatorRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    conditional = [item for item in policy["Statement"]
                   if "Fn::If" in item and item["Fn::If"][1].get("Resource") == MASTER_SECRET]
    assert conditional and conditional[0]["Fn::If"][0] == "IsAlternating"
    assert conditional[0]["Fn::If"][2] == NO_VALUE


@pytest.mark.parametrize("which", ["app", "db"])
def test_kms_only_on_the_customer_key_and_only_when_there_is_one(app, db, which):
    template = app if which == "app" else db
    for where, document in policy_documents(template):
        for item in document["Statement"]:
            for stmt in flat_items([item]):
                if not any(a.startswith("kms:") for a in as_list(stmt.get("Action", []))):
                    continue
                assert "Fn::If" in item and item["Fn::If"][0] == "HasKmsKey", \
                    f"{where}: a KMS grant without a customer key"
                assert item["Fn::If"][2] == NO_VALUE
                assert stmt["Resource"] == {"Ref": "KmsKeyArn"}
                assert set(as_list(stmt["Action"])) <= {"kms:Decrypt", "kms:GenerateDataKey"}


def test_assume_role_only_on_the_configured_role(app, db):
    for template in (app, db):
        for where, document in policy_documents(template):
            if where.endswith(" trust"):
                continue
            for stmt in statements(document):
                if "sts:AssumeRole" in as_list(stmt.get("Action", [])):
                    assert stmt["Resource"] == {"Fn::Sub": (
                        "arn:${AWS::Partition}:iam::${DatabaseAccountId}:role/"
                        "${DatabaseAccountRoleName}-${AWS::Region}")}, where


@pytest.mark.parametrize("role", ["ProvisionerRole", "RotatorRole", "ConnectionTestRole"])
def test_function_roles_are_trusted_by_lambda_only(app, role):
    trust = app["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                      "Action": "sts:AssumeRole"}]
    # Besides its inline policy, only the shared network-interfaces policy of this template.
    assert app["Resources"][role]["Properties"]["ManagedPolicyArns"] == \
        [{"Ref": "FunctionNetworkInterfacesPolicy"}]
    network = app["Resources"]["FunctionNetworkInterfacesPolicy"]["Properties"]["PolicyDocument"]
    for stmt in statements(network):
        assert all(a.startswith("ec2:") for a in as_list(stmt["Action"]))


# --- network ---------------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["app", "db"])
def test_no_security_group_is_open_to_the_internet(app, db, which):
    template = app if which == "app" else db
    for name, res in resources(template).items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::EC2::SecurityGroup":
            rules = flat_items(props.get("SecurityGroupIngress", []))
        elif res["Type"] == "AWS::EC2::SecurityGroupIngress":
            rules = variants(props)
        else:
            continue
        for rule in rules:
            assert rule.get("CidrIp") not in ("0.0.0.0/0",), name
            assert rule.get("CidrIpv6") not in ("::/0",), name
            assert rule.get("IpProtocol") != "-1", f"{name}: all protocols"


@pytest.mark.parametrize("which", ["app", "db"])
def test_security_groups_replace_the_default_egress(app, db, which):
    template = app if which == "app" else db
    for name, res in resources(template, "AWS::EC2::SecurityGroup").items():
        egress = flat_items(res["Properties"].get("SecurityGroupEgress", []))
        assert egress, f"{name} keeps EC2's default allow-all egress"
        for rule in egress:
            assert rule.get("Description"), name
            if rule.get("IpProtocol") == "-1":
                assert rule["CidrIp"] == "127.0.0.1/32", f"{name}: all traffic out"
            else:
                assert rule["IpProtocol"] == "tcp" and rule["FromPort"] == rule["ToPort"], name


def test_only_database_port_and_https_leave_the_functions(app):
    port = {"Fn::FindInMap": ["EngineSettings", {"Ref": "Engine"}, "Port"]}
    for name in ("ProvisionerSecurityGroup", "RotatorSecurityGroup", "ConnectionTestSecurityGroup"):
        for rule in flat_items(app["Resources"][name]["Properties"]["SecurityGroupEgress"]):
            for concrete in variants(rule):
                assert concrete["FromPort"] in (443, port), name
                if concrete.get("CidrIp") == "0.0.0.0/0":
                    # Only the provisioner's S3 rule, for the custom resource response.
                    assert name == "ProvisionerSecurityGroup" and concrete["FromPort"] == 443
                    assert "S3" in concrete["Description"]


def test_database_admits_only_the_functions(app):
    ingress = [r["Properties"] for r in resources(app, "AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"]["GroupId"] == {"Ref": "DatabaseSecurityGroup"}]
    sources = {r["SourceSecurityGroupId"]["Ref"] for r in ingress}
    assert sources == {"ProvisionerSecurityGroup", "RotatorSecurityGroup",
                       "ConnectionTestSecurityGroup"}
    assert "SecurityGroupIngress" not in app["Resources"]["DatabaseSecurityGroup"]["Properties"]


def test_created_vpc_has_no_internet_route(app):
    types = {r["Type"] for r in app["Resources"].values()}
    for forbidden in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway",
                      "AWS::EC2::EgressOnlyInternetGateway", "AWS::EC2::VPCGatewayAttachment",
                      "AWS::EC2::Route", "AWS::EC2::EIP"):
        assert forbidden not in types
    for name, subnet in resources(app, "AWS::EC2::Subnet").items():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False, name


def cidr(block, count, bits):
    """Fn::Cidr for IPv4."""
    net = ipaddress.ip_network(block)
    return [str(s) for s in net.subnets(new_prefix=32 - bits)][:count]


def test_created_subnets_are_valid_disjoint_and_in_two_zones(app):
    vpc_pattern = parameter_pattern(app, "VpcCidr")
    default = app["Parameters"]["VpcCidr"]["Default"]
    assert vpc_pattern.fullmatch(default)
    ipaddress.ip_network(default)  # strict: no host bits set
    for bad in ("10.0.0.0/33", "10.0.0.256/16", "10.0.0/16", "10.0.0.0/8", "10.0.0.0",
                "10.0.0.0/24"):  # too small for two /24 subnets
        assert not vpc_pattern.fullmatch(bad), bad
    subnets = [resources(app)[n]["Properties"] for n in ("PrivateSubnet1", "PrivateSubnet2")]
    blocks, zones = [], []
    for subnet in subnets:
        index, (fn_cidr) = subnet["CidrBlock"]["Fn::Select"]
        block, count, bits = fn_cidr["Fn::Cidr"]
        assert block == {"Ref": "VpcCidr"}
        for vpc in (default, "10.0.0.0/23", "172.16.0.0/20"):
            # Every CIDR the parameter admits leaves room for both subnets.
            assert len(cidr(vpc, count, bits)) == count
        blocks.append(ipaddress.ip_network(cidr(default, count, bits)[index]))
        zones.append(subnet["AvailabilityZone"]["Fn::Select"][0])
    assert not blocks[0].overlaps(blocks[1])
    assert all(b.subnet_of(ipaddress.ip_network(default)) for b in blocks)
    assert sorted(zones) == [0, 1]


def test_vpc_endpoints_serve_the_functions_and_name_their_principals(app):
    endpoints = resources(app, "AWS::EC2::VPCEndpoint")
    services = {e["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1]: e["Properties"]
                for e in endpoints.values()}
    assert set(services) == {"secretsmanager", "sts", "rds", "s3"}
    for service, props in services.items():
        for stmt in statements(props["PolicyDocument"]):
            assert stmt["Action"] != "*" and stmt.get("Resource") != "*", service
            if service == "s3":
                # CloudFormation signs the response URL, so the bucket is restricted instead.
                assert props["VpcEndpointType"] == "Gateway"
                assert stmt["Action"] == "s3:PutObject"
                assert "cloudformation-custom-resource-response-" in stmt["Resource"]["Fn::Sub"]
            else:
                assert props["VpcEndpointType"] == "Interface"
                assert props["PrivateDnsEnabled"] is True
                assert props["SecurityGroupIds"] == [{"Ref": "EndpointSecurityGroup"}]
                assert stmt["Principal"] != "*" and "Fn::GetAtt" in stmt["Principal"]["AWS"]


# --- database --------------------------------------------------------------------------------

def test_database_is_private_encrypted_and_uses_iam_and_managed_password(app):
    db = app["Resources"]["Database"]
    props = db["Properties"]
    assert db["Type"] == "AWS::RDS::DBInstance"
    assert props["PubliclyAccessible"] is False
    assert props["StorageEncrypted"] is True
    assert props["EnableIAMDatabaseAuthentication"] is True
    assert props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props
    assert props["DeletionProtection"] == {"Ref": "DeletionProtection"}
    assert app["Parameters"]["DeletionProtection"]["Default"] == "true"
    assert db["DeletionPolicy"] == "Snapshot"
    engines = app["Mappings"]["EngineSettings"]
    assert (engines["mysql"]["Engine"], engines["mysql"]["EngineVersion"]) == ("mysql", "8.4")
    assert (engines["postgres"]["Engine"], engines["postgres"]["EngineVersion"]) == ("postgres", "16")
    assert set(app["Parameters"]["Engine"]["AllowedValues"]) == {"mysql", "postgres"}


def test_database_requires_tls(app):
    params = variants(app["Resources"]["DatabaseParameterGroup"]["Properties"]["Parameters"])
    assert {"require_secure_transport": "1"} in params
    assert {"rds.force_ssl": "1"} in params


# --- outputs ---------------------------------------------------------------------------------

def test_outputs_name_functions_secrets_and_the_invoke_command(app):
    outputs = app["Outputs"]
    for logical in FUNCTIONS:
        assert any(o["Value"] == {"Ref": logical} for o in outputs.values()), logical
    for secret in ("DBUserASecret", "DBUserBSecret"):
        assert any(o["Value"] == {"Ref": secret} for o in outputs.values()), secret
    command = outputs["ConnectionTestCommand"]["Value"]["Fn::Sub"]
    assert command.startswith("aws lambda invoke ") and "${ConnectionTestFunction}" in command


# --- the database-account template -----------------------------------------------------------

def test_database_account_imports_only_what_the_app_template_exports(app, db):
    exported = {o["Export"]["Name"]["Fn::Sub"].replace("${AWS::StackName}", "{stack}")
                for o in app["Outputs"].values() if "Export" in o}
    imported = set(re.findall(r'"Fn::ImportValue": \{"Fn::Sub": "([^"]+)"\}', json.dumps(db)))
    assert imported
    imported = {i.replace("${DatabaseStackName}", "{stack}") for i in imported}
    assert imported <= exported, imported - exported


def test_database_account_role_trusts_only_the_connection_test_role_with_external_id(app, db):
    role = db["Resources"]["AccessRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    principal = trust["Principal"]["AWS"]["Fn::Sub"]
    assert principal == ("arn:${AWS::Partition}:iam::${ApplicationAccountId}:role/"
                         "${ApplicationStackName}-conntest-${AWS::Region}")
    assert ":root" not in principal
    # The application template names its role the same way.
    app_name = app["Resources"]["ConnectionTestRole"]["Properties"]["RoleName"]["Fn::Sub"]
    assert app_name == "${AWS::StackName}-conntest-${AWS::Region}"
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    # And the application derives this role's ARN from the same name.
    assert role["RoleName"] == {"Fn::Sub": "${AccessRoleName}-${AWS::Region}"}
    assert db["Parameters"]["AccessRoleName"]["Default"] == \
        app["Parameters"]["DatabaseAccountRoleName"]["Default"]


def test_database_account_role_connects_as_one_proxy_user(db):
    statements_ = role_statements(db, "AccessRole")
    assert len(statements_) == 1
    (stmt,) = statements_
    assert stmt["Action"] == "rds-db:connect"
    template, names = stmt["Resource"]["Fn::Sub"]
    assert template.endswith(":dbuser:${ProxyId}/${DbUser}")
    assert names["ProxyId"] == {"Fn::Select": [6, {"Fn::Split": [":", {"Fn::GetAtt": ["Proxy", "DBProxyArn"]}]}]}
    # 'arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123abcd'.split(':')[6] is the proxy id.
    assert "arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123abcd".split(":")[6] == "prx-0123abcd"
    assert "*" not in json.dumps(names)


def test_proxy_requires_tls_and_iam(db):
    proxy = db["Resources"]["Proxy"]["Properties"]
    assert proxy["RequireTLS"] is True
    assert proxy["DebugLogging"] is False
    assert [a["IAMAuth"] for a in proxy["Auth"]] == ["REQUIRED"]
    endpoint = db["Resources"]["ProxyEndpoint"]["Properties"]
    assert endpoint["VpcSubnetIds"] == {"Ref": "ApplicationSubnetIds"}
    assert endpoint["VpcSecurityGroupIds"] == [{"Ref": "ProxyEndpointSecurityGroup"}]


def test_application_shares_its_subnets_with_the_database_account_only(app):
    share = app["Resources"]["PrivateSubnetShare"]
    assert share["Condition"] == "IsApplicationAccount"
    assert share["Properties"]["AllowExternalPrincipals"] is False
    assert share["Properties"]["Principals"] == [{"Ref": "DatabaseAccountId"}]


# --- suppressions ----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["app", "db"])
def test_every_suppression_is_justified(app, db, which):
    template = app if which == "app" else db
    path = APP if which == "app" else DB_ACCOUNT
    for name, res in resources(template).items():
        for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
            assert len(skip.get("comment", "")) > 30, f"{name}: {skip['id']} has no reason"
        ignored = res.get("Metadata", {}).get("cfn-lint", {}).get("config", {}).get("ignore_checks")
        if ignored:
            # The reason is the comment written above the list.
            assert set(ignored) <= {"W1030", "W1033"}, f"{name}: {ignored}"
    assert "cfn-lint" not in template.get("Metadata", {}), "no template-wide cfn-lint suppression"
    assert "# W1030 checks the parameters' empty defaults" in path.read_text() or which == "db"


def test_variants_helper_resolves_both_branches():
    value = {"A": {"Fn::If": ["C", 1, {"Ref": "AWS::NoValue"}]}, "B": 2}
    assert variants(value) == [{"A": 1, "B": 2}, {"B": 2}]
    assert flat_items([1, {"Fn::If": ["C", 2, 3]}]) == [1, 2, 3]
    assert copy.deepcopy(value) == value
