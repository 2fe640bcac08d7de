from tests.support.real_docker import docker_env  # noqa: F401 - a fixture for this folder
