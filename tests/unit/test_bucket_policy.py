"""Bucket policies as AWS S3 reads and applies them: parsing, AWS's MalformedPolicy messages,
wildcards, Deny over Allow, conditions, "public", and the dashboard's public-read switch."""

from __future__ import annotations

import json
import secrets
import time
import uuid

import pytest

from s3proxy.access.policy import (
    MAX_POLICY_BYTES,
    PUBLIC_READ_SID,
    S3_ACTIONS,
    BucketPolicy,
    MalformedPolicy,
    PolicyTooLarge,
    RequestFacts,
    compile_wildcard,
    evaluate,
    grants_public_read,
    is_public,
    named_principals,
    parse_policy,
    public_read_statement,
    with_public_read,
)

BUCKET = "photos"
ALICE = uuid.uuid4().hex
ALICE_CANONICAL = secrets.token_hex(32)
BOB = uuid.uuid4().hex
BOB_CANONICAL = secrets.token_hex(32)


def policy_text(*statements: dict, version: str | None = "2012-10-17") -> str:
    document: dict = {"Statement": list(statements)}
    if version is not None:
        document = {"Version": version, **document}
    return json.dumps(document)


def parse(*statements: dict, version: str | None = "2012-10-17") -> BucketPolicy:
    return parse_policy(policy_text(*statements, version=version), BUCKET)


def stmt(
    effect: str = "Allow",
    principal: object = "*",
    action: object = "s3:GetObject",
    resource: object = f"arn:aws:s3:::{BUCKET}/*",
    **extra: object,
) -> dict:
    """A statement; a field given as None is left out (to write NotPrincipal and the like)."""
    base = {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource}
    statement = {name: value for name, value in base.items() if value is not None}
    statement.update(extra)
    return statement


def facts(
    account: str | None = None,
    action: str = "s3:GetObject",
    key: str | None = "a.jpg",
    ip: str = "203.0.113.7",
    secure: bool = True,
    **extra: object,
) -> RequestFacts:
    canonical = {ALICE: ALICE_CANONICAL, BOB: BOB_CANONICAL}.get(account) if account else None
    resource = f"arn:aws:s3:::{BUCKET}" if key is None else f"arn:aws:s3:::{BUCKET}/{key}"
    return RequestFacts(
        account_id=account,
        canonical_id=canonical,
        action=action,
        resource=resource,
        source_ip=ip,
        secure_transport=secure,
        **extra,  # type: ignore[arg-type]
    )


def refused(text: str | bytes, message: str) -> MalformedPolicy:
    with pytest.raises(MalformedPolicy) as caught:
        parse_policy(text, BUCKET)
    assert caught.value.message == message
    assert str(caught.value) == message
    assert caught.value.code == "MalformedPolicy"
    return caught.value


def refused_statement(message: str, **fields: object) -> None:
    statement = stmt()
    for name, value in fields.items():
        if value is None:
            statement.pop(name, None)
        else:
            statement[name] = value
    refused(policy_text(statement), message)


# --- parsing ---------------------------------------------------------------------------


def test_the_usual_website_policy_parses_and_keeps_its_text_exactly():
    text = (
        '{\n  "Version": "2012-10-17",\n  "Id": "web",\n  "Statement": [{"Sid": "Read",\n'
        '   "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],\n'
        '   "Resource": ["arn:aws:s3:::photos/*"]}]\n}'
    )
    policy = parse_policy(text, BUCKET)
    assert policy.text == text
    assert policy.version == "2012-10-17"
    assert policy.policy_id == "web"
    [statement] = policy.statements
    assert statement.sid == "Read"
    assert statement.effect == "Allow"
    assert statement.principals.everyone
    assert statement.action_names == frozenset({"s3:getobject"})
    assert statement.resources == ("arn:aws:s3:::photos/*",)


def test_bytes_are_read_as_utf8_and_kept_as_text():
    text = policy_text(stmt(Sid="Lecture publique é"))
    policy = parse_policy(text.encode("utf-8"), BUCKET)
    assert policy.text == text


def test_statement_may_be_a_single_object_and_version_defaults_to_2008():
    text = json.dumps({"Statement": stmt(effect="Deny")})
    policy = parse_policy(text, BUCKET)
    assert policy.version == "2008-10-17"
    assert [s.effect for s in policy.statements] == ["Deny"]
    assert parse(stmt(), version="2008-10-17").version == "2008-10-17"


def test_principal_forms():
    everyone = [
        parse(stmt(principal=p)).statements[0].principals for p in ("*", {"AWS": "*"}, {"AWS": ["*"]})
    ]
    assert all(p.everyone for p in everyone)

    by_id = parse(stmt(principal={"AWS": ALICE})).statements[0].principals
    by_root = parse(stmt(principal={"AWS": f"arn:aws:iam::{ALICE}:root"})).statements[0].principals
    by_list = (
        parse(stmt(principal={"AWS": [ALICE, f"arn:aws:iam::{BOB.upper()}:root"]})).statements[0].principals
    )
    assert by_id.accounts == by_root.accounts == frozenset({ALICE})
    assert by_list.accounts == frozenset({ALICE, BOB})
    assert not by_id.everyone

    canonical = parse(stmt(principal={"CanonicalUser": [ALICE_CANONICAL, BOB_CANONICAL]})).statements[0]
    assert canonical.principals.canonical_ids == frozenset({ALICE_CANONICAL, BOB_CANONICAL})

    service = parse(stmt(principal={"Service": "logging.s3.amazonaws.com"})).statements[0]
    assert service.principals.services == ("logging.s3.amazonaws.com",)

    not_principal = parse(stmt(effect="Deny", principal=None, NotPrincipal={"AWS": ALICE}))
    assert not_principal.statements[0].principals.negated


def test_actions_compare_without_case_and_expand_their_wildcards():
    policy = parse(stmt(action=["S3:getobject", "s3:Get*Tagging", "s3:PutObjec?"]))
    names = policy.statements[0].action_names
    assert {"s3:getobject", "s3:getobjecttagging", "s3:getobjectversiontagging", "s3:putobject"} <= names
    assert "s3:putobjecttagging" not in names
    everything = parse(stmt(action="*", resource=[f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"]))
    assert everything.statements[0].action_names == {name.lower() for name in S3_ACTIONS}


def test_every_s3_action_the_reference_lists_is_known():
    for name in (
        "s3:GetObject",
        "s3:GetObjectTagging",
        "s3:PutObjectRetention",
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetBucketObjectLockConfiguration",
        "s3:PutBucketPolicy",
        "s3:ListAllMyBuckets",
        "s3:CreateJob",
        "s3:GetAccessPoint",
        "s3:RestoreObject",
        "s3:ReplicateObject",
        "s3:BypassGovernanceRetention",
    ):
        assert name in S3_ACTIONS
    assert len(S3_ACTIONS) >= 170
    assert all(name.startswith("s3:") for name in S3_ACTIONS)
    # A real, mixed policy naming many of them on the right resources parses.
    parse(
        stmt(
            principal={"AWS": ALICE},
            action=[
                "s3:GetObjectTagging",
                "s3:PutObjectTagging",
                "s3:GetObjectVersion",
                "s3:GetBucketLocation",
                "s3:ListBucketMultipartUploads",
                "s3:AbortMultipartUpload",
            ],
            resource=[f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        )
    )


def test_not_action_and_not_resource_parse():
    policy = parse(
        stmt(
            effect="Deny",
            action=None,
            NotAction="s3:GetObject",
            resource=None,
            NotResource="arn:aws:s3:::photos/public/*",
        )
    )
    [statement] = policy.statements
    assert statement.not_action and statement.not_resource


def test_condition_values_may_be_numbers_and_booleans():
    policy = parse(
        stmt(
            action="s3:ListBucket",
            resource=f"arn:aws:s3:::{BUCKET}",
            Condition={"NumericLessThanEquals": {"s3:max-keys": 10}, "Bool": {"aws:SecureTransport": True}},
        )
    )
    values = {c.key: c.values for c in policy.statements[0].conditions}
    assert values == {"s3:max-keys": ("10",), "aws:securetransport": ("true",)}


def test_named_principals_lists_the_accounts_a_policy_names():
    policy = parse(
        stmt(principal={"AWS": ALICE}),
        stmt(effect="Deny", principal={"AWS": f"arn:aws:iam::{BOB}:root", "CanonicalUser": ALICE_CANONICAL}),
    )
    assert named_principals(policy) == (frozenset({ALICE, BOB}), frozenset({ALICE_CANONICAL}))
    assert named_principals(None) == (frozenset(), frozenset())


# --- MalformedPolicy, as AWS words it --------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "policy", "[]", '["Statement"]', "null", "\ufeff{}"])
def test_a_document_that_does_not_start_with_a_brace_is_refused(text):
    refused(text, "Policies must be valid JSON and the first byte must be '{'")


@pytest.mark.parametrize(
    "text",
    [
        '{"Statement": [}',
        '{"Statement": []',
        '{"Statement": [], "Statement": []}',  # duplicate keys
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Effect": "Deny"}]}',
        '{"Statement": [{"Condition": {"NumericEquals": {"s3:max-keys": NaN}}}]}',
        b'{"Statement": "\xff\xfe"}',  # not UTF-8
    ],
)
def test_invalid_json_is_refused(text):
    refused(text, "This policy contains invalid Json")


def test_missing_or_empty_statement_is_refused():
    refused("{}", "Missing required field Statement")
    refused('{"Version": "2012-10-17"}', "Missing required field Statement")
    refused('{"Version": "2012-10-17", "Statement": []}', "Could not parse the policy: Statement is empty!")


@pytest.mark.parametrize("version", ["2012-10-16", "2012", "", "latest"])
def test_an_unknown_version_is_refused(version):
    refused(policy_text(stmt(), version=version), "The policy must contain a valid version string")
    refused('{"Version": 2012, "Statement": []}', "The policy must contain a valid version string")


@pytest.mark.parametrize(
    "document",
    [
        {"Version": "2012-10-17", "Statement": [stmt()], "Extra": 1},
        {"Version": "2012-10-17", "Statement": "everything"},
        {"Version": "2012-10-17", "Statement": ["Allow"]},
        {"Version": "2012-10-17", "Id": 7, "Statement": [stmt()]},
        {"Version": "2012-10-17", "Statement": [stmt(Extra=1)]},
        {"Version": "2012-10-17", "Statement": [stmt(Sid=1)]},
        {"Version": "2012-10-17", "Statement": [stmt(NotAction="s3:PutObject")]},
        {"Version": "2012-10-17", "Statement": [stmt(NotResource="arn:aws:s3:::photos/x")]},
        {"Version": "2012-10-17", "Statement": [stmt(effect=True)]},
        {"Version": "2012-10-17", "Statement": [stmt(Condition=["StringEquals"])]},
        {"Version": "2012-10-17", "Statement": [stmt(Condition={"StringEquals": "aws:Referer"})]},
        {"Version": "2012-10-17", "Statement": [stmt(Condition={"StringEquals": {"aws:Referer": None}})]},
        {"Version": "2012-10-17", "Statement": [stmt(Condition={"StringEquals": {"aws:Referer": []}})]},
        {
            "Version": "2012-10-17",
            "Statement": [stmt(Condition={"StringEquals": {"aws:Referer": {"a": "b"}}})],
        },
    ],
)
def test_syntax_errors_are_refused(document):
    refused(json.dumps(document), "Invalid policy syntax.")


def test_missing_required_fields_are_named():
    refused_statement("Missing required field Effect", Effect=None)
    refused_statement("Missing required field Principal", Principal=None)
    refused_statement("Missing required field Action", Action=None)
    refused_statement("Missing required field Resource", Resource=None)


@pytest.mark.parametrize("effect", ["allow", "Permit", ""])
def test_an_unknown_effect_is_refused(effect):
    refused_statement(f"Invalid effect: {effect}", Effect=effect)


@pytest.mark.parametrize(
    "principal",
    [
        "someone",
        "",
        {},
        {"AWS": []},
        {"AWS": ""},
        {"AWS": ["*", ALICE]},
        {"AWS": "123456789012"},  # an AWS account: no such account here
        {"AWS": f"arn:aws:iam::{ALICE}:user/alice"},  # no IAM users here
        {"AWS": ALICE[:-1]},
        {"AWS": 7},
        {"CanonicalUser": "not-a-canonical-id"},
        {"Service": "*"},
        {"Federated": "cognito-identity.amazonaws.com"},
        {"Group": "everyone"},
    ],
)
def test_invalid_principals_are_refused(principal):
    refused_statement("Invalid principal in policy", Principal=principal)


def test_not_principal_is_allowed_only_with_deny():
    refused_statement("Invalid principal in policy", Principal=None, NotPrincipal={"AWS": ALICE})
    parse(stmt(effect="Deny", principal=None, NotPrincipal={"AWS": ALICE}))


@pytest.mark.parametrize(
    "action",
    [
        "s3:GetObjects",
        "s3:PutObjectLockConfiguration",  # the action is s3:PutBucketObjectLockConfiguration
        "GetObject",
        "iam:PassRole",
        "s3:Nothing*",
        "s3:Get?",
        "",
        [],
        ["s3:GetObject", "s3:Fly"],
        ["s3:GetObject", 7],
    ],
)
def test_invalid_actions_are_refused(action):
    refused_statement("Policy has invalid action", Action=action)


@pytest.mark.parametrize(
    "resource",
    [
        "*",
        "arn:aws:s3:::other/*",
        "arn:aws:s3:::photos2/*",
        "arn:aws:s3:::",
        "arn:aws:s3:::Photos/*",
        "photos/*",
        "arn:aws:sqs:::photos",
        [],
        ["arn:aws:s3:::photos/*", "arn:aws:s3:::other/*"],
        ["arn:aws:s3:::photos/*", None],
    ],
)
def test_invalid_resources_are_refused(resource):
    refused_statement("Policy has invalid resource", Resource=resource)


def test_resources_with_wildcards_may_name_this_bucket():
    parse(stmt(resource="arn:aws:s3:::*/*"))
    parse(stmt(resource="arn:aws:s3:::pho*/*"))
    parse(stmt(action="s3:ListBucket", resource="arn:aws:s3:::photo?"))


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:ListBucket", "arn:aws:s3:::photos/*"),
        ("s3:GetObject", "arn:aws:s3:::photos"),
        (["s3:GetObject", "s3:ListBucket"], "arn:aws:s3:::photos/*"),
        ("s3:ListAllMyBuckets", "arn:aws:s3:::photos"),
        ("s3:CreateJob", ["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"]),
    ],
)
def test_an_action_that_acts_on_none_of_the_resources_is_refused(action, resource):
    refused_statement(
        "Action does not apply to any resource(s) in statement", Action=action, Resource=resource
    )


def test_wildcard_actions_and_resources_that_reach_each_other_are_accepted():
    parse(stmt(action="s3:*", resource="arn:aws:s3:::photos"))
    parse(stmt(action="s3:List*", resource="arn:aws:s3:::photos/*"))  # ListMultipartUploadParts
    parse(stmt(action="s3:ListBucket", resource="arn:aws:s3:::photos*"))


@pytest.mark.parametrize(
    "operator", ["StringEqualz", "stringequals", "NullIfExists", "ForSomeValues:StringEquals", ""]
)
def test_an_unknown_condition_operator_is_refused(operator):
    refused_statement(f"Invalid Condition type : {operator}", Condition={operator: {"aws:Referer": "x"}})


@pytest.mark.parametrize(
    "key", ["iam:PassedToService", "s3:VersionStatus", "s3:x-acl", "Referer", "aws:", "s3:ExistingObjectTag/"]
)
def test_an_unknown_condition_key_is_refused(key):
    refused_statement("Policy has an invalid condition key", Condition={"StringEquals": {key: "x"}})


def test_listing_keys_on_a_statement_that_never_lists_are_refused():
    refused_statement(
        "Conditions do not apply to combination of actions and resources in statement",
        Condition={"StringLike": {"s3:prefix": "public/*"}},
    )
    parse(
        stmt(
            action=["s3:ListBucket", "s3:GetObject"],
            resource=["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"],
            Condition={"StringLike": {"s3:prefix": "public/*"}},
        )
    )


def test_known_condition_keys_are_accepted_in_any_case():
    parse(
        stmt(
            Condition={
                "StringEquals": {"s3:ExistingObjectTag/security": "public", "AWS:SourceVpc": "vpc-1"},
                "StringLikeIfExists": {"aws:Referer": "https://example.com/*"},
                "ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]},
                "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
                "Null": {"s3:x-amz-server-side-encryption": "true"},
            }
        )
    )


@pytest.mark.parametrize(
    "value", ["10.0.0.0/33", "1.2.3", "10.0.0.0/255.0.0.0", "10.0.0.0/", "2001:db8::/129", "example.com", ""]
)
def test_an_invalid_address_range_is_refused(value):
    refused_statement("Invalid IP address in Conditions", Condition={"IpAddress": {"aws:SourceIp": value}})
    refused_statement(
        "Invalid IP address in Conditions", Condition={"NotIpAddress": {"aws:SourceIp": [value]}}
    )


def test_values_an_operator_cannot_compare_are_refused():
    refused_statement(
        "Invalid value in Conditions for operator NumericLessThan",
        Action="s3:ListBucket",
        Resource="arn:aws:s3:::photos",
        Condition={"NumericLessThan": {"s3:max-keys": "ten"}},
    )
    refused_statement(
        "Invalid value in Conditions for operator Bool", Condition={"Bool": {"aws:SecureTransport": "yes"}}
    )
    refused_statement(
        "Invalid value in Conditions for operator DateLessThan",
        Condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}},
    )


def test_a_policy_over_20_kb_normalized_is_too_large_but_white_space_does_not_count():
    def with_resources(count: int, gap: str) -> str:
        resources = [f"arn:aws:s3:::photos/{i:05}/*" for i in range(count)]
        return policy_text(stmt(resource=resources)).replace(", ", "," + gap)

    # ~28 bytes a resource: 600 fit, 800 do not.
    spaced = with_resources(600, " " * 20)
    assert len(spaced.encode()) > MAX_POLICY_BYTES
    parse_policy(spaced, BUCKET)
    error = refused(
        with_resources(800, ""),
        f"Normalized policy document exceeds the maximum allowed size of {MAX_POLICY_BYTES} bytes",
    )
    assert isinstance(error, PolicyTooLarge)
    assert error.code == "MalformedPolicy"
    # A body far past any policy is refused before it is read as JSON.
    with pytest.raises(PolicyTooLarge):
        parse_policy("{" + " " * (10 * MAX_POLICY_BYTES) + "}", BUCKET)
    with pytest.raises(PolicyTooLarge):
        parse_policy(b"{" + b" " * (10 * MAX_POLICY_BYTES) + b"}", BUCKET)


def test_deep_nesting_is_refused_without_recursion_trouble():
    deep = '{"Statement": ' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(MalformedPolicy):
        parse_policy(deep, BUCKET)


# --- wildcards -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*", "", True),
        ("*", "anything/at:all", True),
        ("?", "", False),
        ("?", "é", True),
        ("a?c", "abc", True),
        ("a?c", "abbc", False),
        ("a*b*c", "aXbYbZc", True),
        ("ab*ba", "aba", False),
        ("ab*ba", "abba", True),
        ("a?*?b", "aXb", False),
        ("a?*?b", "aXYb", True),
        ("*.jpg", "x/y.jpg", True),
        ("*.jpg", "x/y.JPG", False),
        ("arn:aws:s3:::b/*/test/*", "arn:aws:s3:::b/1///test///o.jpg", True),
        ("arn:aws:s3:::b/*/test/*", "arn:aws:s3:::b//test/o.jpg", True),
        ("arn:aws:s3:::b/*/test/*", "arn:aws:s3:::b/test/o.jpg", False),
        ("arn:aws:s3:::b/*/test/*", "arn:aws:s3:::b/1-test/o.jpg", False),
        ("a.c", "abc", False),  # regex characters are literal
        ("a[bc]", "ab", False),
        ("a[bc]", "a[bc]", True),
        ("line*end", "line\nend", True),
    ],
)
def test_wildcards_match_as_iam_describes(pattern, text, expected):
    assert compile_wildcard(pattern).match(text) is expected


def test_policy_variable_escapes_are_literal_characters_in_2012_and_text_in_2008():
    assert compile_wildcard("a${*}b", variables=True).match("a*b")
    assert not compile_wildcard("a${*}b", variables=True).match("aXb")
    assert compile_wildcard("a${?}${$}", variables=True).match("a?$")
    assert not compile_wildcard("home/${aws:username}/*", variables=True).match("home/alice/x")
    assert compile_wildcard("a${*}b").match("a${xyz}b")


def test_resource_wildcards_are_case_sensitive_in_evaluation():
    policy = parse(stmt(resource="arn:aws:s3:::photos/Public/*"))
    assert evaluate(policy, facts(key="Public/a.jpg")) == "Allow"
    assert evaluate(policy, facts(key="public/a.jpg")) is None


def test_action_names_in_requests_compare_without_case():
    policy = parse(stmt(action="s3:Get*"))
    assert evaluate(policy, facts(action="s3:GetObject")) == "Allow"
    assert evaluate(policy, facts(action="S3:GETOBJECTTAGGING")) == "Allow"
    assert evaluate(policy, facts(action="s3:PutObject")) is None


def test_pathological_wildcards_are_fast():
    nasty = compile_wildcard("a*a*a*a*a*a*a*b")
    text = "a" * 200_000
    started = time.perf_counter()
    assert not nasty.match(text)
    assert nasty.match(text + "b")
    assert not compile_wildcard("*a?a?a?a?a?a?a?b").match(text)
    assert not compile_wildcard("?*" * 300 + "b").match(text)
    assert time.perf_counter() - started < 0.5

    # The same patterns in a stored policy, against long keys, on every request.
    pattern = "arn:aws:s3:::photos/" + "a*" * 200 + "b"
    policy = parse(stmt(resource=pattern), stmt(resource="arn:aws:s3:::photos/" + "*a?" * 200 + "b"))
    long_key = "a" * 1024
    started = time.perf_counter()
    for _ in range(200):
        assert evaluate(policy, facts(key=long_key)) is None
    assert time.perf_counter() - started < 1.0


def test_a_policy_full_of_wildcard_actions_parses_quickly():
    actions = [f"s3:*{i:03}*Obj?ct*" for i in range(600)]  # names no action: each is checked
    started = time.perf_counter()
    refused(policy_text(stmt(action=actions)), "Policy has invalid action")
    actions = [f"s3:Get*O{'?' * (i % 5)}*" for i in range(900)]
    text = policy_text(stmt(action=actions))
    assert len(text) < MAX_POLICY_BYTES
    parse_policy(text, BUCKET)
    assert time.perf_counter() - started < 2.0


# --- evaluation ------------------------------------------------------------------------


def test_no_policy_and_no_matching_statement_say_nothing():
    assert evaluate(None, facts()) is None
    policy = parse(stmt(action="s3:PutObject"))
    assert evaluate(policy, facts(action="s3:GetObject")) is None


def test_an_explicit_deny_wins_over_any_allow_in_either_order():
    allow = stmt(principal="*", action="s3:*", resource="arn:aws:s3:::photos/*")
    deny = stmt(
        effect="Deny", principal={"AWS": BOB}, action="s3:GetObject", resource="arn:aws:s3:::photos/secret/*"
    )
    for policy in (parse(allow, deny), parse(deny, allow)):
        assert evaluate(policy, facts(BOB, key="secret/plan.pdf")) == "Deny"
        assert evaluate(policy, facts(BOB, key="open/plan.pdf")) == "Allow"
        assert evaluate(policy, facts(ALICE, key="secret/plan.pdf")) == "Allow"
        assert evaluate(policy, facts(None, key="secret/plan.pdf")) == "Allow"


def test_anonymous_callers_match_only_everyone():
    for principal in (
        {"AWS": ALICE},
        {"CanonicalUser": ALICE_CANONICAL},
        {"Service": "logging.s3.amazonaws.com"},
    ):
        assert evaluate(parse(stmt(principal=principal)), facts(None)) is None
    for principal in ("*", {"AWS": "*"}):
        assert evaluate(parse(stmt(principal=principal)), facts(None)) == "Allow"


def test_accounts_are_matched_by_id_root_arn_or_canonical_id():
    for principal in (
        {"AWS": ALICE},
        {"AWS": f"arn:aws:iam::{ALICE.upper()}:root"},
        {"CanonicalUser": ALICE_CANONICAL},
    ):
        policy = parse(stmt(principal=principal))
        assert evaluate(policy, facts(ALICE)) == "Allow"
        assert evaluate(policy, facts(BOB)) is None
    service = parse(stmt(principal={"Service": "logging.s3.amazonaws.com"}))
    assert evaluate(service, facts(ALICE)) is None


def test_not_principal_denies_everyone_else_anonymous_included():
    policy = parse(
        stmt(principal="*", action="s3:*", resource=["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"]),
        stmt(effect="Deny", principal=None, NotPrincipal={"AWS": ALICE}, action="s3:DeleteObject"),
    )
    assert evaluate(policy, facts(ALICE, action="s3:DeleteObject")) == "Allow"
    assert evaluate(policy, facts(BOB, action="s3:DeleteObject")) == "Deny"
    assert evaluate(policy, facts(None, action="s3:DeleteObject")) == "Deny"
    assert evaluate(policy, facts(BOB, action="s3:GetObject")) == "Allow"


def test_not_action_and_not_resource_apply_to_everything_else():
    policy = parse(
        stmt(
            effect="Deny",
            action=None,
            NotAction=["s3:GetObject", "s3:ListBucket"],
            resource=["arn:aws:s3:::photos/*"],
        ),
        stmt(effect="Allow", resource=None, NotResource="arn:aws:s3:::photos/private/*"),
    )
    assert evaluate(policy, facts(ALICE, action="s3:PutObject")) == "Deny"
    assert evaluate(policy, facts(ALICE, action="s3:GetObject", key="x.jpg")) == "Allow"
    assert evaluate(policy, facts(ALICE, action="s3:GetObject", key="private/x.jpg")) is None


# --- conditions ------------------------------------------------------------------------


def condition(cond: dict, **statement: object) -> BucketPolicy:
    return parse(stmt(Condition=cond, **statement))


def test_source_ip_ranges_in_ipv4_and_ipv6():
    policy = condition(
        {"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64", "198.51.100.9"]}}
    )
    assert evaluate(policy, facts(ip="203.0.113.200")) == "Allow"
    assert evaluate(policy, facts(ip="203.0.114.1")) is None
    assert evaluate(policy, facts(ip="2001:db8:1234:5678:abcd::1")) == "Allow"
    assert evaluate(policy, facts(ip="2001:db8:1234:5679::1")) is None
    assert evaluate(policy, facts(ip="198.51.100.9")) == "Allow"  # a bare address is /32
    assert evaluate(policy, facts(ip="198.51.100.10")) is None
    assert evaluate(policy, facts(ip="::ffff:203.0.113.5")) == "Allow"  # IPv4 seen through a v6 socket
    assert evaluate(policy, facts(ip="fe80::1%eth0")) is None
    assert evaluate(policy, facts(ip="not an address")) is None


def test_not_ip_address_with_an_exception_inside_a_range():
    policy = condition(
        {
            "IpAddress": {"aws:SourceIp": "54.240.143.0/24"},
            "NotIpAddress": {"aws:SourceIp": "54.240.143.188/32"},
        }
    )
    assert evaluate(policy, facts(ip="54.240.143.1")) == "Allow"
    assert evaluate(policy, facts(ip="54.240.143.188")) is None
    deny_outside = parse(
        stmt(),
        stmt(
            effect="Deny",
            action="s3:*",
            Condition={"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1/128"]}},
        ),
    )
    assert evaluate(deny_outside, facts(ip="10.1.2.3")) == "Allow"
    assert evaluate(deny_outside, facts(ip="::1")) == "Allow"
    assert evaluate(deny_outside, facts(ip="192.0.2.1")) == "Deny"


def test_secure_transport_true_and_false():
    deny_plain = parse(
        stmt(), stmt(effect="Deny", action="s3:*", Condition={"Bool": {"aws:SecureTransport": "false"}})
    )
    assert evaluate(deny_plain, facts(secure=True)) == "Allow"
    assert evaluate(deny_plain, facts(secure=False)) == "Deny"
    only_tls = condition({"Bool": {"aws:SecureTransport": True}})
    assert evaluate(only_tls, facts(secure=True)) == "Allow"
    assert evaluate(only_tls, facts(secure=False)) is None
    upper = condition({"Bool": {"aws:SecureTransport": "TRUE"}})
    assert evaluate(upper, facts(secure=True)) == "Allow"


LIST = {"action": "s3:ListBucket", "resource": "arn:aws:s3:::photos"}


def listing(prefix: str | None, account: str | None = ALICE, **extra: object) -> RequestFacts:
    return facts(account, action="s3:ListBucket", key=None, prefix=prefix, **extra)


def test_prefix_with_string_like_and_string_equals():
    like = condition({"StringLike": {"s3:prefix": ["", "home/", "home/alice/*"]}}, **LIST)
    assert evaluate(like, listing("")) == "Allow"
    assert evaluate(like, listing("home/")) == "Allow"
    assert evaluate(like, listing("home/alice/docs/")) == "Allow"
    assert evaluate(like, listing("home/bob/")) is None
    assert evaluate(like, listing(None)) is None  # no prefix in the request: the key is absent

    equals = condition({"StringEquals": {"s3:prefix": "projects/"}}, **LIST)
    assert evaluate(equals, listing("projects/")) == "Allow"
    assert evaluate(equals, listing("projects/x")) is None
    assert evaluate(equals, listing("Projects/")) is None
    ignore_case = condition({"StringEqualsIgnoreCase": {"s3:prefix": "projects/"}}, **LIST)
    assert evaluate(ignore_case, listing("PROJECTS/")) == "Allow"


def test_a_key_missing_from_the_request_follows_iams_rules():
    # IAM "Condition operators": absent key -> a positive operator is false, a negated one
    # true, ...IfExists true; Null tests presence.
    cases = [
        ({"StringEquals": {"s3:prefix": "a/"}}, None),
        ({"StringLike": {"s3:prefix": "*"}}, None),
        ({"StringNotEquals": {"s3:prefix": "a/"}}, "Allow"),
        ({"StringNotLike": {"s3:prefix": "a/*"}}, "Allow"),
        ({"StringEqualsIfExists": {"s3:prefix": "a/"}}, "Allow"),
        ({"StringNotEqualsIfExists": {"s3:prefix": "a/"}}, "Allow"),
        ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, None),
        ({"Null": {"s3:prefix": "true"}}, "Allow"),
        ({"Null": {"s3:prefix": "false"}}, None),
        ({"ForAllValues:StringEquals": {"s3:prefix": "a/"}}, "Allow"),
        ({"ForAnyValue:StringEquals": {"s3:prefix": "a/"}}, None),
    ]
    for cond, expected in cases:
        assert evaluate(condition(cond, **LIST), listing(None)) == expected, cond
    # and with the key present:
    present = [
        ({"StringEqualsIfExists": {"s3:prefix": "a/"}}, "b/", None),
        ({"StringEqualsIfExists": {"s3:prefix": "a/"}}, "a/", "Allow"),
        ({"StringNotEquals": {"s3:prefix": ["a/", "b/"]}}, "b/", None),
        ({"StringNotEquals": {"s3:prefix": ["a/", "b/"]}}, "c/", "Allow"),
        ({"Null": {"s3:prefix": "false"}}, "", "Allow"),
        ({"ForAnyValue:StringEquals": {"s3:prefix": "a/"}}, "a/", "Allow"),
    ]
    for cond, prefix, expected in present:
        assert evaluate(condition(cond, **LIST), listing(prefix)) == expected, (cond, prefix)


def test_an_anonymous_caller_lacks_the_account_keys():
    policy = condition({"StringEquals": {"aws:PrincipalAccount": ALICE}})
    assert evaluate(policy, facts(ALICE)) == "Allow"
    assert evaluate(policy, facts(BOB)) is None
    assert evaluate(policy, facts(None)) is None
    deny_others = parse(
        stmt(),
        stmt(effect="Deny", Condition={"StringNotEquals": {"aws:userid": ALICE}}, principal={"AWS": "*"}),
    )
    assert evaluate(deny_others, facts(ALICE)) == "Allow"
    assert evaluate(deny_others, facts(BOB)) == "Deny"
    assert evaluate(deny_others, facts(None)) == "Deny"  # absent key: a negated operator holds


def test_values_of_one_key_are_ored_and_keys_and_operators_are_anded():
    policy = condition(
        {
            "StringLike": {"s3:prefix": ["public/*", "shared/*"], "s3:delimiter": "/"},
            "NumericLessThanEquals": {"s3:max-keys": 100},
        },
        **LIST,
    )
    assert evaluate(policy, listing("shared/x", delimiter="/", max_keys=50)) == "Allow"
    assert evaluate(policy, listing("public/x", delimiter="/", max_keys=100)) == "Allow"
    assert evaluate(policy, listing("public/x", delimiter="/", max_keys=1000)) is None
    assert evaluate(policy, listing("public/x", delimiter=None, max_keys=50)) is None
    assert evaluate(policy, listing("other/x", delimiter="/", max_keys=50)) is None


def test_referer_user_agent_and_time_conditions():
    hotlink = condition(
        {"StringLike": {"aws:Referer": ["https://example.com/*", "https://www.example.com/*"]}}
    )
    assert evaluate(hotlink, facts(referer="https://www.example.com/gallery")) == "Allow"
    assert evaluate(hotlink, facts(referer="https://evil.example.net/")) is None
    assert evaluate(hotlink, facts()) is None

    agent = condition({"StringNotLike": {"aws:UserAgent": "*bot*"}})
    assert evaluate(agent, facts(user_agent="Mozilla/5.0")) == "Allow"
    assert evaluate(agent, facts(user_agent="somebot/1.0")) is None

    window = condition(
        {
            "DateGreaterThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"},
            "DateLessThan": {"aws:EpochTime": "1735689600"},
        }
    )
    assert evaluate(window, facts(current_time=1_717_200_000.0)) == "Allow"  # mid-2024
    assert evaluate(window, facts(current_time=1_600_000_000.0)) is None
    assert evaluate(window, facts(current_time=1_800_000_000.0)) is None
    assert evaluate(window, facts()) is None  # no clock given: the keys are absent


def test_canned_acl_and_version_conditions():
    policy = parse(
        stmt(principal={"AWS": ALICE}, action="s3:PutObject"),
        stmt(
            effect="Deny",
            action="s3:PutObject",
            Condition={"StringEquals": {"s3:x-amz-acl": ["public-read", "public-read-write"]}},
        ),
    )
    assert evaluate(policy, facts(ALICE, action="s3:PutObject")) == "Allow"
    assert evaluate(policy, facts(ALICE, action="s3:PutObject", acl="private")) == "Allow"
    assert evaluate(policy, facts(ALICE, action="s3:PutObject", acl="public-read")) == "Deny"

    version = condition({"StringEquals": {"s3:versionid": "v1"}}, action="s3:GetObjectVersion")
    assert evaluate(version, facts(action="s3:GetObjectVersion", version_id="v1")) == "Allow"
    assert evaluate(version, facts(action="s3:GetObjectVersion", version_id="v2")) is None


def test_condition_keys_compare_without_case_and_variables_follow_the_version():
    policy = condition({"IpAddress": {"AWS:SOURCEIP": "10.0.0.0/8"}})
    assert evaluate(policy, facts(ip="10.9.9.9")) == "Allow"

    star_2012 = condition({"StringEquals": {"s3:prefix": "a${*}"}}, **LIST)
    assert evaluate(star_2012, listing("a*")) == "Allow"
    assert evaluate(star_2012, listing("a${*}")) is None
    star_2008 = parse(stmt(Condition={"StringEquals": {"s3:prefix": "a${*}"}}, **LIST), version="2008-10-17")
    assert evaluate(star_2008, listing("a${*}")) == "Allow"
    unknown_variable = condition({"StringEquals": {"s3:prefix": "${aws:username}/"}}, **LIST)
    assert evaluate(unknown_variable, listing("alice/")) is None
    unknown_in_resource = parse(stmt(resource="arn:aws:s3:::photos/home/${aws:username}/*"))
    assert evaluate(unknown_in_resource, facts(key="home/alice/a.jpg")) is None


# --- "public" --------------------------------------------------------------------------


def public(cond: dict | None = None, **statement: object) -> bool:
    extra = {} if cond is None else {"Condition": cond}
    return is_public(parse(stmt(**statement, **extra)))


def test_is_public_follows_the_meaning_of_public():
    assert not is_public(None)
    assert public()
    assert public(principal={"AWS": "*"})
    assert public(principal={"AWS": ["*"]}, action="s3:PutObject")
    assert not public(principal={"AWS": ALICE})
    assert not public(principal={"CanonicalUser": ALICE_CANONICAL})
    assert not public(principal={"Service": "logging.s3.amazonaws.com"})
    assert not is_public(parse(stmt(effect="Deny")))  # a Deny grants nothing
    assert is_public(parse(stmt(principal={"AWS": ALICE}), stmt()))  # one public statement is enough


def test_conditions_that_fix_who_may_call_make_a_policy_non_public():
    assert not public({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}})
    assert not public({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/48"]}})
    assert not public({"StringEquals": {"aws:SourceVpc": "vpc-91237329"}})
    assert not public({"StringEquals": {"aws:PrincipalAccount": ALICE}})
    assert not public({"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3"}})
    assert not public({"ArnEquals": {"aws:SourceArn": "arn:aws:cloudfront::1:distribution/E1"}})
    assert not public({"StringEquals": {"aws:userid": ALICE}})


def test_conditions_that_do_not_fix_who_may_call_leave_a_policy_public():
    assert public({"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}})  # broader than /8
    assert public({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "0.0.0.0/0"]}})
    assert public({"IpAddress": {"aws:SourceIp": "2001:db8::/31"}})  # broader than /32
    assert public({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    assert public({"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}})
    assert public({"StringLike": {"aws:SourceVpc": "vpc-*"}})
    assert public({"StringEqualsIfExists": {"aws:SourceVpc": "vpc-91237329"}})
    assert public({"StringNotEquals": {"aws:SourceVpc": "vpc-91237329"}})
    assert public({"ForAllValues:StringEquals": {"aws:SourceVpc": "vpc-1"}})
    assert public({"StringEquals": {"aws:Referer": "https://example.com/"}})
    assert public({"Bool": {"aws:SecureTransport": "true"}})
    assert public({"StringEquals": {"aws:userid": "AROLEID:*"}})


# --- the dashboard's public read -------------------------------------------------------


def test_public_read_statement_is_the_usual_website_statement():
    assert public_read_statement("site") == {
        "Sid": PUBLIC_READ_SID,
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::site/*",
    }
    assert PUBLIC_READ_SID == "FolioPublicRead"


def test_turning_public_read_on_and_off_round_trips():
    text = with_public_read(None, BUCKET, True)
    assert text is not None
    policy = parse_policy(text, BUCKET)
    assert grants_public_read(policy, BUCKET)
    assert is_public(policy)
    assert evaluate(policy, facts(None)) == "Allow"
    assert json.loads(text)["Statement"] == [public_read_statement(BUCKET)]

    # On twice: nothing changes, nothing is duplicated.
    assert with_public_read(policy, BUCKET, True) == text

    assert with_public_read(policy, BUCKET, False) is None  # the only statement gone: no policy
    assert with_public_read(None, BUCKET, False) is None


def test_public_read_keeps_the_users_other_statements():
    mine = stmt(principal={"AWS": ALICE}, action="s3:PutObject", Sid="AliceWrites")
    deny = stmt(effect="Deny", action="s3:DeleteObject", Sid="NoDeletes")
    original = parse_policy(
        json.dumps({"Version": "2012-10-17", "Id": "mine", "Statement": [mine, deny]}), BUCKET
    )
    assert not grants_public_read(original, BUCKET)

    on = with_public_read(original, BUCKET, True)
    document = json.loads(on)
    assert document["Id"] == "mine"
    assert document["Statement"] == [mine, deny, public_read_statement(BUCKET)]
    on_policy = parse_policy(on, BUCKET)
    assert grants_public_read(on_policy, BUCKET)
    assert with_public_read(on_policy, BUCKET, True) == on

    off = with_public_read(on_policy, BUCKET, False)
    assert json.loads(off)["Statement"] == [mine, deny]
    assert not grants_public_read(parse_policy(off, BUCKET), BUCKET)


def test_public_read_with_a_single_statement_object_and_a_changed_folio_statement():
    single = parse_policy(
        json.dumps({"Statement": stmt(principal={"AWS": ALICE}, action="s3:PutObject")}), BUCKET
    )
    on = json.loads(with_public_read(single, BUCKET, True))
    assert len(on["Statement"]) == 2
    assert "Version" not in on  # the document keeps its own (2008-10-17) version

    # The Folio statement narrowed by hand no longer grants public read; turning the
    # switch on replaces it instead of adding a second one with the same Sid.
    narrowed = dict(public_read_statement(BUCKET), Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})
    policy = parse(narrowed)
    assert not grants_public_read(policy, BUCKET)
    statements = json.loads(with_public_read(policy, BUCKET, True))["Statement"]
    assert statements == [public_read_statement(BUCKET)]


def test_equivalent_statements_count_as_public_read():
    for statement in (
        stmt(Sid="Website"),
        stmt(principal={"AWS": "*"}, action=["s3:GetObject"], resource=["arn:aws:s3:::photos/*"]),
        stmt(action="s3:Get*"),
        stmt(
            action=["s3:GetObject", "s3:ListBucket"],
            resource=["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"],
        ),
        stmt(action="s3:*", resource="arn:aws:s3:::photos*"),
    ):
        assert grants_public_read(parse(statement), BUCKET), statement
    for statement in (
        stmt(resource="arn:aws:s3:::photos/public/*"),
        stmt(principal={"AWS": ALICE}),
        stmt(Condition={"Bool": {"aws:SecureTransport": "true"}}),
        stmt(action="s3:GetObjectVersion"),
        stmt(effect="Deny"),
        stmt(resource=None, NotResource="arn:aws:s3:::photos/private/*"),
        stmt(resource="arn:aws:s3:::photos/*.jpg"),
    ):
        assert not grants_public_read(parse(statement), BUCKET), statement
    assert not grants_public_read(None, BUCKET)


def test_turning_public_read_off_removes_exact_copies_and_keeps_broader_grants():
    copy = {
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": ["s3:getobject"],
        "Resource": "arn:aws:s3:::photos/*",
    }
    assert with_public_read(parse(copy), BUCKET, False) is None

    copy_in_a_list = dict(copy, Principal={"AWS": ["*"]}, Action="s3:GetObject", Sid="Mine")
    assert with_public_read(parse(copy_in_a_list), BUCKET, False) is None

    broader = stmt(
        action=["s3:GetObject", "s3:ListBucket"], resource=["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"]
    )
    policy = parse(broader)
    assert with_public_read(policy, BUCKET, True) == policy.text  # already public: unchanged
    kept = with_public_read(policy, BUCKET, False)
    assert kept == policy.text  # nothing of Folio's to remove: the text stays as the user wrote it
    assert grants_public_read(parse_policy(kept, BUCKET), BUCKET)  # the user's own grant stays


def test_public_read_on_a_policy_near_the_limit_reports_it_too_large():
    def compact_size(count: int) -> int:
        resources = [f"arn:aws:s3:::photos/{i:05}/*" for i in range(count)]
        text = policy_text(stmt(principal={"AWS": ALICE}, resource=resources))
        return len(json.dumps(json.loads(text), separators=(",", ":")))

    count = 600  # about 29 bytes a resource: well under the limit
    while compact_size(count + 1) < MAX_POLICY_BYTES - 50:  # leaves less room than a statement needs
        count += 1
    resources = [f"arn:aws:s3:::photos/{i:05}/*" for i in range(count)]
    policy = parse(stmt(principal={"AWS": ALICE}, resource=resources))
    with pytest.raises(PolicyTooLarge):
        with_public_read(policy, BUCKET, True)
