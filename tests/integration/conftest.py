from tests.support.real_docker import docker_env  # noqa: F401 - a fixture for this folder
from tests.support.agents_env import base_image, project  # noqa: F401,E402 - fixtures
