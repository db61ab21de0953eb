"""CEL behind expr.py: compilation errors at load time, helpers, observed values."""

import json

import pytest

from auditor.expr import (
    EvaluationError,
    ExpressionError,
    Scope,
    compile_expression,
    fact_alias,
)


def evaluate(source, **variables):
    return Scope(variables).evaluate(compile_expression(source))


def test_syntax_error_is_a_compile_error_with_position():
    with pytest.raises(ExpressionError, match="column 14: Syntax error"):
        compile_expression("subject.a == ")


@pytest.mark.parametrize("source, word", [("bogus.x == 1", "bogus"), ("nope(subject)", "nope")])
def test_unknown_names_are_compile_errors(source, word):
    with pytest.raises(ExpressionError, match=word):
        compile_expression(source)


def test_fact_references_are_found():
    expression = compile_expression(
        "facts.host.sysctl['kernel.x'] == '1' && facts.host.os.id in vars.ids"
    )
    assert expression.facts == {"host.sysctl", "host.os"}


def test_fact_references_inside_strings_or_members_are_left_alone():
    expression = compile_expression(
        "facts.host.os.id == 'facts.host.os.id' && subject.facts.host.os == \"facts.k8s.pods\""
    )
    assert expression.facts == {"host.os"}
    scope = Scope({"facts": {"host": {"os": {"id": "facts.host.os.id"}}}, "subject": {"facts": {}}})
    with pytest.raises(EvaluationError, match="no such key"):  # subject.facts has no `host`
        scope.evaluate(expression)
    same = {"host": {"os": {"id": "facts.host.os.id"}}}  # the literal is compared as written
    assert evaluate("facts.host.os.id == 'facts.host.os.id'", facts=same) is True


def test_a_fact_must_be_named_in_full():
    with pytest.raises(ExpressionError, match=r"facts.<kind>.<name>"):
        compile_expression("has(facts.host)")


def test_paths_read_into_a_fact_stop_at_lists_and_methods():
    expression = compile_expression(
        "get(facts.host.sysctl, 'kernel.x', '0') == '1'"
        " && facts.host.mounts[0].target == '/'"
        " && facts.host.sshd_config.settings.exists(k, k == 'a')"
        " && has(facts.host.os.id)"
    )
    assert dict(expression.fact_paths) == {
        "host.sysctl": ("kernel.x",),
        "host.mounts": (),
        "host.sshd_config": ("settings",),
        "host.os": ("id",),
    }


def test_a_scope_converts_only_the_paths_read_and_keeps_absent_keys_absent():
    facts = {"host": {"sysctl": {"kernel.x": "1", "kernel.y": "0"}}}
    one = compile_expression("get(facts.host.sysctl, 'kernel.x', '0')")
    absent = compile_expression("has(facts.host.sysctl.absent)")
    scope = Scope({"facts": facts}, [one, absent])
    assert scope.evaluate(one) == "1"
    assert scope.evaluate(absent) is False
    with pytest.raises(EvaluationError, match="no such key: 'kernel.y'"):  # not converted
        scope.evaluate(compile_expression("facts.host.sysctl['kernel.y']"))
    whole = compile_expression("size(facts.host.sysctl)")
    assert Scope({"facts": facts}, [whole]).evaluate(whole) == 2


def test_the_keys_after_a_fact_are_read_through_a_variable_of_their_own():
    """Selecting a member copies it in the CEL library (0.4 ms for 800 packages, on every
    iteration of a comprehension): the keys that follow a fact become part of its variable."""
    expression = compile_expression(
        "vars.denied.filter(p, p in facts.host.packages.packages) == []"
        " && facts.host.sysctl['kernel.x'] == '1'"
        " && has(facts.host.os.id) && facts.host.mounts[0].target == '/'"
    )
    assert expression.cel_source == (
        "vars.denied.filter(p, p in facts__host__packages__packages) == []"
        " && facts__host__sysctl___6b65726e656c2e78 == '1'"
        " && has(facts__host__os.id) && facts__host__mounts[0].target == '/'"
    )
    assert set(expression.aliases) == {
        ("host.packages", ("packages",)), ("host.sysctl", ("kernel.x",)),
        ("host.os", ()), ("host.mounts", ()),
    }  # fmt: skip
    facts = {
        "packages": {"manager": "dpkg", "packages": {"bash": "5.2"}},
        "sysctl": {"kernel.x": "1", "kernel.y": "0"},
        "os": {"id": "debian"},
        "mounts": [{"target": "/"}],
    }
    variables = {"facts": {"host": facts}, "vars": {"denied": ["telnetd"]}}
    assert Scope(variables, [expression]).evaluate(expression) is True
    facts["packages"] = {"manager": None}  # the keys lead nowhere: an error naming the key
    with pytest.raises(EvaluationError, match="no such key: 'packages'"):
        Scope(variables, [expression]).evaluate(expression)
    with pytest.raises(EvaluationError, match="no such key: 'packages'"):
        Scope(variables).evaluate(expression)  # an expression the scope was not made for
    assert fact_alias("k8s.pods", ["a__b", "c_d", "_e"]) == (
        "facts__k8s__pods___615f5f62__c_d___5f65"
    )


def test_only_the_parts_of_a_subject_that_are_read_are_converted():
    expression = compile_expression(
        "get(subject, 'type', 'ClusterIP') != 'NodePort' && subject.ports[0].port > 0"
        " && subject.spec.containers.exists(c, c.x) && 'subject.secret' != ''"
    )
    assert set(expression.subject_paths) == {("type",), ("ports",), ("spec", "containers")}
    subject = {
        "ports": [{"port": 80}],
        "spec": {"containers": [{"x": True}], "token": "t"},
        "secret": "s",
    }
    scope = Scope({}, [expression])
    scope.enter(subject)
    assert scope.evaluate(expression) is True
    assert scope.evaluate(compile_expression("has(subject.secret)")) is False  # not converted
    assert scope.observe(compile_expression("subject.secret == ''")) == {"subject.secret": "s"}
    assert compile_expression("size(subject) > 0").subject_paths == ((),)


def test_entering_a_subject_swaps_only_the_subject():
    scope = Scope({"vars": {"limit": 2}})
    expression = compile_expression("subject.n <= vars.limit")
    same = compile_expression("subject.n <= vars.limit")  # another check's identical `where`
    verdicts = []
    for subject in ({"n": 1}, {"n": 3}, {}):
        scope.enter(subject)
        try:
            verdict = (scope.evaluate(expression), scope.evaluate(same))
        except EvaluationError:
            verdict = None
        verdicts.append((verdict, scope.observe(expression), scope.observe(same)))
    assert verdicts == [
        ((True, True), {"subject.n": 1}, {"subject.n": 1}),
        ((False, False), {"subject.n": 3}, {"subject.n": 3}),
        (None, {"subject.n": "<absent>"}, {"subject.n": "<absent>"}),  # never the last one's
    ]


def test_an_observation_built_from_a_map_is_the_same_in_every_run():
    """CEL iterates a map in hash order, which differs between processes."""
    keys = [f"c{n}" for n in range(40)]
    scope = Scope({})
    scope.enter({"images": {key: {"digest": None} for key in reversed(keys)}})
    named = [
        ("images", compile_expression("subject.images.map(c, c)")),
        ("pairs", compile_expression("subject.images.map(c, {'z': 1, 'name': c, 'a': 2})")),
    ]
    observed = scope.observe_named(named)
    assert observed["images"] == sorted(keys)
    pairs = [{"a": 2, "name": key, "z": 1} for key in sorted(keys)]
    assert json.dumps(observed["pairs"]) == json.dumps(pairs)  # key order too


def test_missing_key_is_an_evaluation_error_not_false():
    with pytest.raises(EvaluationError, match="no such key"):
        evaluate("subject.HostConfig.Privileged", subject={"HostConfig": {}})


def test_observed_values_are_the_chains_read_and_stop_before_methods():
    expression = compile_expression("!subject.HostConfig.Privileged && subject.Mounts.size() == 0")
    scope = Scope({"subject": {"HostConfig": {"Privileged": True}, "Mounts": []}})
    assert scope.evaluate(expression) is False
    assert scope.observe(expression) == {
        "subject.HostConfig.Privileged": True,
        "subject.Mounts": [],
    }


def test_a_default_applied_is_recorded_as_such_and_keys_are_written_as_read():
    expression = compile_expression(
        "int(get(facts.host.sysctl, 'kernel.kptr_restrict', '0')) >= 1"
        " && get(facts.host.sysctl, 'kernel.dmesg_restrict', '0') == '1'"
        " && facts.host.sshd_config.settings.permitrootlogin == 'no'"
    )
    facts = {
        "sysctl": {"kernel.kptr_restrict": "0", "other": "1"},
        "sshd_config": {"settings": {"permitrootlogin": "yes", "port": "22"}},
    }
    scope = Scope({"facts": {"host": facts}}, [expression])
    assert scope.evaluate(expression) is False
    assert scope.observe(expression) == {
        'host.sysctl["kernel.kptr_restrict"]': "0",
        'host.sysctl["kernel.dmesg_restrict"]': "<absent, default '0' applied>",
        "host.sshd_config.settings.permitrootlogin": "yes",
    }


def test_predicates_over_many_items_record_the_offending_items_and_their_count():
    containers = [
        {"name": f"c{n}", "image": "x", "securityContext": {"privileged": n % 2 == 0}}
        for n in range(50)
    ]
    subject = {"spec": {"containers": containers}, "secrets": {"a": 1}}
    all_ = compile_expression("subject.spec.containers.all(c, !c.securityContext.privileged)")
    exists = compile_expression("!subject.spec.containers.exists(c, c.securityContext.privileged)")
    over_vars = compile_expression("vars.denied.all(p, !(p in subject.secrets))")
    scope = Scope({"vars": {"denied": ["a", "b"]}}, [all_, exists, over_vars])
    scope.enter(subject)
    assert scope.evaluate(all_) is False and scope.evaluate(exists) is False
    assert scope.observe(all_) == {}  # items only when asked: a pass costs no CEL evaluation
    violating = scope.observe(all_, items=True)["subject.spec.containers"]
    assert violating["count"] == 25 and len(violating["violating"]) == 20
    assert violating["violating"][0] == {"name": "c0", "securityContext": {"privileged": True}}
    matching = scope.observe(exists, items=True)["subject.spec.containers"]
    assert matching == {"matching": violating["violating"], "count": 25}
    assert scope.observe(over_vars, items=True) == {"vars.denied": {"violating": ["a"], "count": 1}}


def test_a_predicate_that_is_the_whole_expression_needs_no_second_evaluation():
    """`range.exists(...)` false, or `range.all(...)` true: no item is offending, as its value
    alone shows; the record says so without evaluating the body again."""
    exists = compile_expression("subject.items.exists(i, i > 5)")
    negated = compile_expression("!subject.items.all(i, i > 5)")
    scope = Scope({}, [exists, negated])
    scope.enter({"items": [1, 2, 3]})
    assert scope.evaluate(exists) is False and scope.evaluate(negated) is True
    assert scope.observe(exists, items=True) == {"subject.items": {"matching": [], "count": 0}}
    assert scope.observe(negated, items=True) == {
        "subject.items": {"violating": [1, 2, 3], "count": 3}
    }


def test_an_absent_key_is_said_once_not_for_every_step_after_it():
    expression = compile_expression(
        "has(subject.Config.Healthcheck) && subject.Config.Healthcheck.Test[0] != 'NONE'"
    )
    scope = Scope({}, [expression])
    scope.enter({"Config": {"Image": "x"}})
    assert scope.evaluate(expression) is False
    assert scope.observe(expression) == {"subject.Config.Healthcheck": "<absent>"}


def test_large_values_read_whole_are_bounded_with_their_count_never_summarised():
    expression = compile_expression("size(subject.items) == 0")
    observed = Scope({"subject": {"items": list(range(5000))}}).observe(expression)
    assert observed["subject.items"]["count"] == 5000
    assert observed["subject.items"]["first"] == list(range(20))


@pytest.mark.parametrize(
    "mode, limit, expected",
    [
        ("0640", "0644", True),
        ("0664", "0644", False),
        ("0600", "0600", True),
        ("4755", "0755", False),
        ("0755", "0644", False),
    ],
)
def test_mode_at_most(mode, limit, expected):
    assert evaluate(f"mode_at_most('{mode}', '{limit}')") is expected


@pytest.mark.parametrize(
    "version, minimum, expected",
    [
        ("6.1.0-18-amd64", "6.1.0-17-amd64", True),
        ("6.1.0-9-amd64", "6.1.0-17-amd64", False),
        ("v1.27.3", "1.28", False),
        ("1.28.0", "1.28", True),
        ("5.10", "5.4", True),
        # pre-releases order before their release, in semver and in Debian spelling
        ("1.28.0-rc.1", "1.28.0", False),
        ("1.28.0", "1.28.0-rc.1", True),
        ("v1.28.0-alpha.2", "1.28.0-beta.1", False),
        ("1.28.0~rc1", "1.28.0", False),
        # build metadata and distribution repacks are the release itself
        ("20.10.24+dfsg1", "20.10.24", True),
        ("v1.28.3+k3s1", "1.28.3", True),
        ("1.6.20~ds1", "1.6.20", True),
        ("1.1.5+ds1", "1.1.12", False),
        # neither semver nor Debian: compared by its numbers
        ("5.14.0-427.13.1.el9_4.x86_64", "5.14.0-362.8.1.el9_3.x86_64", True),
        ("5.14.0-70.13.1.el9_0.x86_64", "5.14.0-362.8.1.el9_3.x86_64", False),
    ],
)
def test_version_at_least(version, minimum, expected):
    assert evaluate(f"version_at_least('{version}', '{minimum}')") is expected


def test_flag_parsing_last_wins_and_bare_flags_are_true():
    args = ["kube-apiserver", "--anonymous-auth=true", "--profiling", "--anonymous-auth=false"]
    assert evaluate("flag(subject, 'anonymous-auth')", subject=args) == "false"
    assert evaluate("flag(subject, 'profiling')", subject=args) == "true"
    assert evaluate("flag(subject, 'audit-log-path') == null", subject=args) is True


def test_path_within_and_globs():
    assert evaluate("path_within('/etc/ssh', ['/proc', '/etc'])") == "/etc"
    assert evaluate("path_within('/etcetera', ['/etc'])") is None
    assert evaluate("path_within('/home', ['/'])") is None
    assert evaluate("path_within('/', ['/'])") == "/"
    assert evaluate("glob_any('getty@tty1.service', ['getty@*.service'])") is True


def test_get_writes_down_defaults():
    assert evaluate("get(subject, 'permitrootlogin', 'prohibit-password')", subject={}) == (
        "prohibit-password"
    )
    assert evaluate("get(subject, 'x', 'd')", subject={"x": None}) == "d"
    assert evaluate("get(subject, 'x', 'd')", subject={"x": "no"}) == "no"
