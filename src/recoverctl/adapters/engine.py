"""The Docker engine, through the Docker SDK: containers by compose labels, status, logs, exec."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from recoverctl.core.stack import ServiceStatus
from recoverctl.errors import EngineError, ErrorCode, StackError

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ENGINE_HINT = (
    "Start the Docker engine (`systemctl start docker`, or `dockerd &` as root) "
    "or point DOCKER_HOST at one, then try again."
)


def _where() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _skip_ssh_transport() -> None:
    """The SDK imports its ssh:// transport, and with it paramiko (about 0.07 s of every
    command that reaches the engine), whenever paramiko is installed, as it is for the SFTP
    targets. An engine not reached over ssh:// never uses that transport, so its import is
    skipped; the SDK treats the module as absent (as it does without paramiko)."""
    if "docker" not in sys.modules and not _where().startswith("ssh://"):
        sys.modules.setdefault("docker.transport.sshconn", None)  # type: ignore[arg-type]


class Engine:
    def __init__(self, client: docker.DockerClient):
        self.client = client
        # The SDK's wrapper of each open exec socket, by the socket's id: the wrapper holds
        # the HTTP response, whose collection would close the socket under a running exec.
        self._held: dict[int, object] = {}

    @classmethod
    def connect(cls, timeout: int = 30) -> Engine:
        _skip_ssh_transport()
        # Imported here: the SDK is slow to import and most of --help never needs it.
        import docker
        from docker.errors import DockerException

        try:
            client = docker.from_env(timeout=timeout)
            client.ping()
        except (DockerException, OSError, Exception) as exc:  # requests' errors too
            raise EngineError(
                f"Cannot reach the Docker engine at {_where()}: {_short(exc)}", ENGINE_HINT
            ) from None
        return cls(client)

    def _api_call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from docker.errors import APIError, DockerException

        try:
            return fn(*args, **kwargs)
        except APIError as exc:
            raise EngineError(
                f"Docker engine refused to {what}: {exc.explanation or exc}",
                code=ErrorCode.ENGINE_REFUSED,
            ) from None
        except DockerException as exc:
            raise EngineError(f"Could not {what}: {_short(exc)}", ENGINE_HINT) from None
        except OSError as exc:
            raise EngineError(
                f"Lost the Docker engine while trying to {what}: {exc}", ENGINE_HINT
            ) from None

    def containers(self, project: str, service: str | None = None) -> list[Container]:
        labels = [f"{PROJECT_LABEL}={project}"]
        if service is not None:
            labels.append(f"{SERVICE_LABEL}={service}")
        found: list[Container] = self._api_call(
            "list containers", self.client.containers.list, all=True, filters={"label": labels}
        )
        return found

    def statuses(self, project: str) -> list[ServiceStatus]:
        return [to_status(c) for c in self.containers(project)]

    def service_container(self, project: str, service: str, *, running: bool = True) -> Container:
        found = self.containers(project, service)
        not_running = ErrorCode.DB_NOT_RUNNING if service == "db" else ErrorCode.SERVICE_NOT_RUNNING
        if not found:
            raise StackError(
                f"Service {service} has no container in project {project}.",
                "Bring the stack up first: recoverctl up",
                code=not_running,
            )
        live = [c for c in found if c.status == "running"]
        if running and not live:
            raise StackError(
                f"Service {service} is not running ({found[0].status}).",
                "Start it: recoverctl up (or recoverctl restart " + service + ")",
                code=not_running,
            )
        return (live or found)[0]

    def logs(self, container: Container, *, tail: int | str = "all", follow: bool = False) -> Any:
        return self._api_call(
            "read logs",
            container.logs,
            stream=follow,
            follow=follow,
            tail=tail,
            stdout=True,
            stderr=True,
        )

    def stdout_of(self, container: Container) -> bytes:
        """A finished one-off's standard output alone (its warnings go to stderr)."""
        raw = self._api_call(
            "read logs", container.logs, stdout=True, stderr=False, stream=False
        )
        return bytes(raw)

    def log_tail(self, container: Container, lines: int = 20) -> str:
        try:
            raw = self.logs(container, tail=lines)
        except EngineError:
            return ""
        return bytes(raw).decode("utf-8", "replace").rstrip()

    def restart(self, container: Container, timeout: int = 30) -> None:
        self._api_call(f"restart {container.name}", container.restart, timeout=timeout)

    def reload(self, container: Container) -> None:
        self._api_call(f"inspect {container.name}", container.reload)

    def stop(self, container: Container, timeout: int = 30) -> None:
        self._api_call(f"stop {container.name}", container.stop, timeout=timeout)

    def start(self, container: Container) -> None:
        self._api_call(f"start {container.name}", container.start)

    def remove_project(self, project: str) -> list[str]:
        """Removes every container (with its anonymous volumes), network, volume and built
        image labelled with a compose project: a drill's throwaway stack. Returns what is
        still there afterwards. Images are untagged by name, never forced: one another tag
        or container uses stays."""
        from docker.errors import NotFound

        def gone(fn: Any, *args: Any, **kwargs: Any) -> None:
            with contextlib.suppress(NotFound):  # removed meanwhile: what was asked for
                fn(*args, **kwargs)

        labels = {"label": [f"{PROJECT_LABEL}={project}"]}
        client = self.client
        for c in self._api_call("list containers", client.containers.list, all=True, filters=labels):
            self._api_call(f"remove {c.name}", gone, c.remove, force=True, v=True)
        for n in self._api_call("list networks", client.networks.list, filters=labels):
            self._api_call(f"remove network {n.name}", gone, n.remove)
        for v in self._api_call("list volumes", client.volumes.list, filters=labels):
            self._api_call(f"remove volume {v.name}", gone, v.remove, force=True)
        for image in self._api_call("list images", client.images.list, filters=labels):
            for tag in image.tags:
                self._api_call(f"remove image {tag}", gone, client.images.remove, tag)
        return self.project_leftovers(project)

    def project_leftovers(self, project: str) -> list[str]:
        """What the engine still holds of a compose project, as "container NAME" and the like."""
        labels = {"label": [f"{PROJECT_LABEL}={project}"]}
        client = self.client
        found = [
            *(f"container {c.name}" for c in self._api_call(
                "list containers", client.containers.list, all=True, filters=labels)),
            *(f"network {n.name}" for n in self._api_call(
                "list networks", client.networks.list, filters=labels)),
            *(f"volume {v.name}" for v in self._api_call(
                "list volumes", client.volumes.list, filters=labels)),
            *(f"image {t}" for i in self._api_call(
                "list images", client.images.list, filters=labels) for t in i.tags),
        ]  # fmt: skip
        return found

    def version(self) -> dict[str, Any]:
        found: dict[str, Any] = self._api_call("read its version", self.client.version)
        return found

    def exec_open(
        self, container: Container, argv: Sequence[str], *, stdin: bool, user: str = ""
    ) -> tuple[str, socket.socket]:
        """Creates and starts an exec; returns its id and the engine's raw, blocking socket
        (stdout and stderr multiplexed; stdin when asked for)."""
        api = self.client.api
        what = f"start {argv[0]} in {container.name}"
        created = self._api_call(
            what, api.exec_create, container.id, list(argv),
            stdout=True, stderr=True, stdin=stdin, user=user,
        )  # fmt: skip
        sock = self._api_call(what, api.exec_start, created["Id"], socket=True)
        raw: socket.socket = getattr(sock, "_sock", sock)
        raw.settimeout(None)
        self._held[id(raw)] = sock
        return str(created["Id"]), raw

    def exec_release(self, raw: socket.socket) -> None:
        """Forgets an exec socket's wrapper once the socket is closed (see exec_open)."""
        getattr(self, "_held", {}).pop(id(raw), None)

    def exec_exit_code(self, exec_id: str, wait: float = 15) -> int | None:
        """The exit code of a finished exec; None when the engine cannot say (the container
        or the engine went away, or it still runs after wait seconds)."""
        api = self.client.api
        deadline = time.monotonic() + wait
        # The stream ends a moment before the engine marks the exec done: poll fast at first,
        # since every query pays this wait.
        pause = 0.002
        while True:
            try:
                info: dict[str, Any] = api.exec_inspect(exec_id)
            except Exception:
                return None  # no code to trust
            if not info.get("Running"):
                code = info.get("ExitCode")
                return int(code) if code is not None else None
            if time.monotonic() > deadline:
                return None
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def create_volume(self, name: str, labels: dict[str, str]) -> None:
        self._api_call(f"create volume {name}", self.client.volumes.create, name, labels=labels)

    def volume_exists(self, name: str) -> bool:
        from docker.errors import NotFound

        def look() -> bool:
            try:
                self.client.volumes.get(name)
            except NotFound:
                return False
            return True

        return bool(self._api_call(f"look up volume {name}", look))

    def remove_volume(self, name: str) -> None:
        """One named volume, by its full name; gone already is what was asked for."""
        from docker.errors import NotFound

        def remove() -> None:
            with contextlib.suppress(NotFound):
                self.client.volumes.get(name).remove()

        self._api_call(f"remove volume {name}", remove)

    def remove_container(self, name: str) -> bool:
        """One container by its exact name, stopped first (its named volumes stay);
        False when there was none."""
        from docker.errors import NotFound

        def remove() -> bool:
            try:
                found = self.client.containers.get(name)
            except NotFound:
                return False
            if found.name != name:
                return False
            with contextlib.suppress(NotFound):
                found.remove(force=True)
            return True

        return bool(self._api_call(f"remove container {name}", remove))

    def run_detached(
        self,
        image: str,
        command: Sequence[str],
        *,
        name: str,
        labels: dict[str, str],
        environment: dict[str, str],
        mounts: Sequence[dict[str, Any]],
        network: str,
        user: str = "",
        entrypoint: Sequence[str] | None = None,
    ) -> Container:
        """A container of recoverctl's own (a one-off restore, a throwaway cluster): its
        environment travels in the API request, never in an argv."""
        from docker.types import Mount

        made: list[Mount] = [
            Mount(
                m["target"],
                m["source"],
                type=m["type"],
                read_only=bool(m.get("read_only", False)),
                propagation=(m.get("bind") or {}).get("propagation"),
            )
            for m in mounts
        ]
        container: Container = self._api_call(
            f"start container {name}",
            self.client.containers.run,
            image,
            list(command),
            name=name,
            labels=labels,
            environment=environment,
            mounts=made,
            network=network,
            user=user or None,
            entrypoint=list(entrypoint) if entrypoint is not None else None,
            detach=True,
        )
        return container

    def wait(self, container: Container, timeout: float) -> int | None:
        """The container's exit code; None when it still runs after timeout seconds."""
        import requests

        try:
            done: Any = container.wait(timeout=timeout)
        except (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout):
            return None
        return int(done.get("StatusCode", -1))

    def networks_of(self, container: Container) -> list[str]:
        return list((container.attrs.get("NetworkSettings") or {}).get("Networks") or {})

    def has_image(self, name: str) -> bool:
        from docker.errors import NotFound

        api: Any = self.client.api

        def inspect() -> bool:
            try:
                api.inspect_image(name)
            except NotFound:
                return False
            return True

        return bool(self._api_call(f"look up image {name}", inspect))

    def can_pull(self, name: str) -> bool:
        """Whether the engine reaches a registry that has the image: asks for its manifest
        the way a pull would (the engine's mirrors and proxy included), and pulls nothing."""
        api: Any = self.client.api
        try:
            api.inspect_distribution(name)
        except Exception:  # no DNS, no route, refused, unknown image: no registry for it
            return False
        return True


def to_status(container: Container) -> ServiceStatus:
    attrs = container.attrs
    state = attrs.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    ports: list[str] = []
    for inner, bindings in sorted((attrs.get("NetworkSettings", {}).get("Ports") or {}).items()):
        for b in bindings or []:
            ports.append(f"{b.get('HostIp')}:{b.get('HostPort')}->{inner}")
    status = state.get("Status", container.status)
    return ServiceStatus(
        service=container.labels.get(SERVICE_LABEL, "?"),
        container=container.name,
        state=status,
        health=health,
        ports=tuple(ports),
        exit_code=state.get("ExitCode") if status in ("exited", "dead") else None,
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:300]
