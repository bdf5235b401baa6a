import pytest

from svyaz.identity.policy import Policy, PolicyError


def test_defaults_follow_the_design_page():
    policy = Policy.default()
    assert policy.kind("user_id").limit == 1 and policy.kind("user_id").priority == 1
    assert policy.kind("email").priority < policy.kind("phone").priority < policy.kind("session_id").priority
    assert policy.kind("device_id").moves and not policy.kind("client_id").moves
    assert not policy.kind("ip").links


def test_a_partial_override_keeps_the_other_defaults(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("[kinds.email]\nlimit = 2\n\n[kinds.shop_card]\npriority = 4\nlimit = 3\n")
    policy = Policy.load(path)
    assert policy.kind("email").limit == 2 and policy.kind("email").priority == 2
    assert policy.kind("shop_card").limit == 3


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[kinds.email]\nlimit = 0\n", "kinds.email.limit"),
        ("[kinds.email]\nlimitt = 3\n", "kinds.email.limitt"),
        ("[kinds.email]\nblocklist = ['(']\n", "kinds.email.blocklist"),
        ("default_region = 'Russia'\n", "default_region"),
        ("[kinds.Bad-Kind]\nlimit = 3\n", "Bad-Kind"),
        ("[kinds.email\n", "not valid TOML"),
    ],
)
def test_a_bad_config_is_a_clear_error_naming_the_key(tmp_path, text, named):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=named.replace(".", r"\.").replace("(", r"\(")):
        Policy.load(path)


def test_a_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        Policy.load(tmp_path / "nope.toml")
