"""The [[clouds]] of resilin.toml: every setting read as documented, every mistake refused with a
message naming the cloud and the setting."""

from __future__ import annotations

import pytest

from resilin.settings import config

ACCOUNT = (
    '[[accounts]]\naccount_id = "111111111111"\naccess_key = "AKIAEXAMPLE000000000"\nsecret_key = "s"\n\n'
)

FULL = (
    'default_cloud = "aws"\nreconcile_interval = 60\n'
    + ACCOUNT
    + """
[[clouds]]
name = "local-a"
kind = "local"
subnet = "10.77.1.0/24"
fallback = ["local-b"]
quota = { instances = 8 }

[[clouds]]
name = "local-b"
kind = "local"
subnet = "10.77.2.0/24"
port = 9100
ssh_via_gateway = true
images = { "emr-7.5.0" = "localhost/resilin-node:7.5" }
[clouds.instance_types]
"m5.xlarge" = { vcpus = 2, memory_mib = 4096 }

[[clouds]]
name = "aws"
region = "eu-west-1"
profile = "work"
image_id = "ami-0123456789abcdef0"
images = { "emr-6.15.0" = "ami-0fedcba9876543210" }
subnet_id = "subnet-0abc"
security_group_ids = ["sg-0abc"]
ssh_cidr = "203.0.113.7"
quota = { instances = 20, vcpus = 80 }
fallback = ["local-a"]
[clouds.instance_types]
"m5.xlarge" = { vcpus = 4, memory_mib = 16384, hourly_price = 0.192 }
"r5.2xlarge" = { vcpus = 8, memory_mib = 65536, hourly_price = 0.504 }
"""
)


def _load(tmp_path, text: str):
    path = tmp_path / "resilin.toml"
    path.write_text(text)
    return config.load(tmp_path, path)


def test_every_cloud_setting_is_read(tmp_path):
    settings = _load(tmp_path, FULL)
    a, b, aws = settings.clouds
    assert settings.default_cloud == "aws" and settings.reconcile_interval == 60
    assert (a.kind, a.subnet, a.fallback, a.quota.instances, a.port) == (
        "local",
        "10.77.1.0/24",
        ("local-b",),
        8,
        0,
    )
    assert b.port == 9100 and b.instance_types["m5.xlarge"].memory_mib == 4096
    assert (
        b.image_for_release("emr-7.5.0") == "localhost/resilin-node:7.5"
        and b.image_for_release("emr-6.15.0") == ""
    )
    assert (aws.kind, aws.region, aws.profile, aws.endpoint) == ("ec2", "eu-west-1", "work", "")
    assert aws.image_for_release("emr-6.15.0") == "ami-0fedcba9876543210"
    assert aws.image_for_release("emr-7.5.0") == "ami-0123456789abcdef0"
    assert aws.ssh_cidr == "203.0.113.7/32" and aws.security_group_ids == ("sg-0abc",)
    assert aws.quota.vcpus == 80 and aws.instance_types["r5.2xlarge"].hourly_price == 0.504
    assert aws.offers("m5.xlarge") and not aws.offers("c5.large") and a.offers("anything.at-all")
    assert aws.vcpus_of("m5.xlarge") == 4 and aws.create_security_group
    assert b.ssh_via_gateway and not a.ssh_via_gateway and not aws.ssh_via_gateway


@pytest.mark.parametrize(
    "cloud, message",
    [
        ('name = "x y"\nkind = "local"\nsubnet = "10.1.1.0/24"', "name 'x y' must be 1 to 40 letters"),
        ('name = "c"\nkind = "openstack"', "kind must be 'ec2' or 'local', not 'openstack'"),
        ('name = "c"\nkind = "local"', "clouds[0] (c): 'subnet' is required"),
        ('name = "c"\nkind = "local"\nsubnet = "10.1.1.0/33"', "'subnet' must be an IPv4 network"),
        ('name = "c"\nkind = "local"\nsubnet = "8.8.8.0/24"', "must be a private network"),
        (
            'name = "c"\nkind = "local"\nsubnet = "10.1.1.0/24"\nendpoint = "http://x"',
            "unknown setting(s) endpoint for a local cloud",
        ),
        ('name = "c"\nimge_id = "ami-1"', "unknown setting(s) imge_id"),
        ('name = "c"\nendpoint = "ftp://x"', "'endpoint' must be an http(s) URL"),
        ('name = "c"\naccess_key = "AKIA"', "'access_key' and 'secret_key' go together"),
        ('name = "c"\naccess_key = "A"\nsecret_key = "s"\nprofile = "p"', "either 'profile' or 'access_key'"),
        ('name = "c"\nquota = { instances = 0 }', "'quota.instances' must be a positive integer"),
        ('name = "c"\nquota = { cpus = 4 }', "quota: unknown setting(s) cpus"),
        ('name = "c"\nfallback = ["c"]', "'fallback' cannot name the cloud itself"),
        ('name = "c"\nfallback = ["elsewhere"]', "fallback 'elsewhere' is not one of the [[clouds]]"),
        ('name = "c"\nimages = { "7.5.0" = "ami-1" }', "'7.5.0' is not a release label"),
        ('name = "c"\nssh_cidr = "anywhere"', "'ssh_cidr' must be a network"),
        ('name = "c"\nsecurity_group_ids = ["default"]', "'default' is not a security group id"),
        ('name = "c"\nsubnet_id = "10.0.0.0/24"', "is not a subnet id"),
        ('name = "c"\ncreate_security_group = "yes"', "'create_security_group' must be true or false"),
        ('name = "c"\nssh_via_gateway = 1', "'ssh_via_gateway' must be true or false"),
        (
            'name = "c"\ninstance_types = { "huge" = { vcpus = 1, memory_mib = 1 } }',
            "'huge' is not a type name",
        ),
        (
            'name = "c"\ninstance_types = { "m5.xlarge" = { vcpus = 4 } }',
            "'instance_types.m5.xlarge.memory_mib' is required",
        ),
        (
            'name = "c"\ninstance_types = { "m5.xlarge" = { vcpus = 4, memory_mib = 1, hourly_price = -1 } }',
            "hourly_price' must be a number",
        ),
        (
            'name = "c"\ninstance_types = { "m5.xlarge" = { vcpus = 4, memory_mib = 1, disk = 9 } }',
            "unknown setting(s) disk",
        ),
    ],
)
def test_mistakes_are_refused_with_the_cloud_and_setting_named(tmp_path, cloud, message):
    with pytest.raises(config.ConfigError) as err:
        _load(tmp_path, ACCOUNT + "[[clouds]]\n" + cloud + "\n")
    assert message in str(err.value)
    assert str(tmp_path / "resilin.toml") in str(err.value)


def test_clouds_are_checked_against_each_other(tmp_path):
    two = ACCOUNT + '[[clouds]]\nname = "a"\nkind = "local"\nsubnet = "10.1.0.0/16"\n\n'
    with pytest.raises(config.ConfigError, match="'a' is already used by clouds"):
        _load(tmp_path, two + '[[clouds]]\nname = "a"\nendpoint = "http://e"\n')
    with pytest.raises(
        config.ConfigError, match=r"subnets of local clouds a \(10.1.0.0/16\) and b \(10.1.7.0/24\) overlap"
    ):
        _load(tmp_path, two + '[[clouds]]\nname = "b"\nkind = "local"\nsubnet = "10.1.7.0/24"\n')
    with pytest.raises(config.ConfigError, match="both use port 9000"):
        _load(
            tmp_path,
            ACCOUNT
            + '[[clouds]]\nname = "a"\nkind = "local"\nsubnet = "10.1.1.0/24"\nport = 9000\n'
            + '[[clouds]]\nname = "b"\nkind = "local"\nsubnet = "10.1.2.0/24"\nport = 9000\n',
        )
    with pytest.raises(config.ConfigError, match="default_cloud 'c' is not one of the"):
        _load(tmp_path, 'default_cloud = "c"\n' + two)
    with pytest.raises(config.ConfigError, match="'reconcile_interval' must be a number of seconds"):
        _load(tmp_path, "reconcile_interval = -5\n" + two)


def test_the_default_configuration_is_valid(tmp_path):
    settings = config.load(tmp_path)
    [cloud] = settings.clouds
    assert (cloud.name, cloud.kind, settings.default_cloud) == ("local", "local", "local")
