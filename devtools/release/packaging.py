"""Build a service's Lambda zip with ``chalice package`` and check what is in it.

Chalice prints "Could not install dependencies" and still exits 0 when a wheel
is missing, and silently leaves out a symlink anywhere but ``vendor/``: either
would deploy a Lambda that fails on its first import. This catches both, and
checks that the zip's packages are exactly the app's lock (``requirements.txt``,
made by ``make lock``; the versions from each ``*.dist-info`` in the zip).
"""

from __future__ import annotations

import argparse
import email.parser
import json
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from devtools.release.lock import app_lock, normal, read_lock
from devtools.release.template_operations import apply_to

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_RUNTIME_PROVIDES = {"boto3", "botocore", "s3transfer", "jmespath"}
LAMBDA_LIMIT_UNZIPPED = 250 * 1024 * 1024
DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024


@dataclass
class PackageReport:
    service: str
    zip_path: Path
    template_path: Path
    zipped_bytes: int
    unzipped_bytes: int
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        mb = 1024 * 1024
        return f"{self.service}: {self.zipped_bytes / mb:.1f} MB zipped, {self.unzipped_bytes / mb:.1f} MB unzipped" + (
            "" if not self.problems else " -- " + "; ".join(self.problems)
        )


def zip_distributions(names: list[str], read) -> dict[str, str]:
    """The distributions a zip holds, by normalised name: the version each
    ``*.dist-info/METADATA`` in it says (``read`` gives an entry's bytes)."""
    found = {}
    for name in names:
        folder, _, leaf = name.partition("/")
        if leaf != "METADATA" or not folder.endswith(".dist-info"):
            continue
        headers = email.parser.BytesHeaderParser().parsebytes(read(name))
        found[normal(headers["Name"])] = headers["Version"]
    return found


def lock_problems(service: str, in_zip: dict[str, str], root: Path = ROOT) -> list[str]:
    """The zip's packages against the app's lock: each locked version there, nothing else."""
    locked = {pin.name: pin.version for pin in read_lock(app_lock(service, root)).values()}
    problems = []
    for name in sorted(set(locked) | set(in_zip)):
        if name in LAMBDA_RUNTIME_PROVIDES:
            continue
        if name not in in_zip:
            problems.append(f"{name}=={locked[name]} is locked but missing from the zip")
        elif name not in locked:
            problems.append(f"{name}=={in_zip[name]} is in the zip but not in {service}/requirements.txt")
        elif in_zip[name] != locked[name]:
            problems.append(f"{name} is {in_zip[name]} in the zip, {locked[name]} in the lock")
    return problems


def build(service: str, out_dir: Path, stage: str = "aws-dev", root: Path = ROOT) -> tuple[Path, str]:
    """Run ``chalice package`` on a fresh copy of the service, as a clean clone would."""
    out_dir = Path(out_dir).resolve()  # chalice runs in the copy: a relative path would land there
    work = Path(tempfile.mkdtemp(prefix=f"pkg-{service}-"))
    try:
        ignore = shutil.ignore_patterns("__pycache__", "deployments", "venv", "*.pyc")
        shutil.copytree(root / service, work / service, symlinks=True, ignore=ignore)
        shutil.copytree(root / "shared", work / "shared", ignore=ignore)
        # Another app's code, the batch side or the dev tools must never reach a zip;
        # they are left out of the copy and checked for in the zip all the same.
        env = {
            "AWS_DEFAULT_REGION": "us-east-1",
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            # chalice imports app.py; bytecode it would leave in chalicelib/ must not reach the zip.
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "chalice"), "package", "--stage", stage, str(out_dir)],
            cwd=work / service,
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"chalice package failed for {service}:\n{output}")
        return out_dir / "deployment.zip", output
    finally:
        shutil.rmtree(work, ignore_errors=True)


def add_api_settings(template_path: Path, service: str, root: Path = ROOT) -> None:
    """What Chalice's config cannot express, added to the generated API:

    - stage throttling (``deploy.json`` says why each figure);
    - CORS headers on API Gateway's own answers (an authorizer's 401/403, a
      throttled 429, an integration 5xx): without them a page calling the API
      from another origin cannot read the status and sees only a network error;
    - ``Ipv6AllowedForDualStack`` on each function in the VPC.
    """
    settings_file = root / service / ".chalice" / "deploy.json"
    throttling = json.loads(settings_file.read_text())["throttling"] if settings_file.exists() else None
    template = json.loads(template_path.read_text())
    # What API Gateway answers itself (a refused token, an unknown path, a URL too long) in
    # the one error shape the services use: {"error": {"code", "message"}}.
    shape = '{"error": {"code": "$context.error.responseType.toLowerCase()", "message": $context.error.messageString}}'
    cors = {
        "ResponseParameters": {"Headers": {"Access-Control-Allow-Origin": "'*'"}},
        "ResponseTemplates": {"application/json": shape},
    }
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Api":
            if throttling:
                resource["Properties"]["MethodSettings"] = [
                    {
                        "ResourcePath": "/*",
                        "HttpMethod": "*",
                        "ThrottlingRateLimit": throttling["rate_per_s"],
                        "ThrottlingBurstLimit": throttling["burst"],
                    }
                ]
            resource["Properties"]["GatewayResponses"] = {"DEFAULT_4XX": cors, "DEFAULT_5XX": cors}
        vpc = resource.get("Properties", {}).get("VpcConfig")
        if resource["Type"] == "AWS::Serverless::Function" and vpc:
            # The VPC's subnets are dual-stack and it has no NAT gateway: a function reaches
            # the vendor and AWS's dual-stack endpoints over IPv6 (egress-only gateway).
            vpc["Ipv6AllowedForDualStack"] = True
    template_path.write_text(json.dumps(template, indent=2))


def precompile(zip_path: Path) -> int:
    """Add bytecode for every module in the zip; returns how many were compiled.

    Lambda's task directory is read-only, so without ``.pyc`` files in the zip
    every cold start compiles each imported module from source (measured: the
    quote API's first request 490 ms without, see make bench). The bytecode uses
    unchecked hash-based invalidation (PEP 552): a zip never changes after
    packaging, so Python need not compare it with the source. Compiled with
    this Python 3.12, whose bytecode is the Lambda runtime's (``cpython-312``).
    """
    tag = sys.implementation.cache_tag
    compiled = 0
    staged = zip_path.with_suffix(".tmp.zip")
    with (
        tempfile.TemporaryDirectory(prefix="pyc-") as scratch,
        zipfile.ZipFile(zip_path) as source,
        zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        module, cached = Path(scratch) / "module.py", Path(scratch) / "module.pyc"
        for info in source.infolist():
            if "/__pycache__/" in f"/{info.filename}":
                continue  # bytecode chalice picked up from importing the app: ours replaces it
            data = source.read(info)
            target.writestr(info, data)
            if not info.filename.endswith(".py"):
                continue
            module.write_bytes(data)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SyntaxWarning)
                try:
                    py_compile.compile(
                        str(module),
                        cfile=str(cached),
                        dfile=f"/var/task/{info.filename}",
                        doraise=True,
                        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                    )
                except py_compile.PyCompileError:
                    continue  # a file Python 3.12 cannot import anyway (templates, other versions' code)
            folder, _, name = info.filename.rpartition("/")
            entry = zipfile.ZipInfo(
                f"{folder + '/' if folder else ''}__pycache__/{name[:-3]}.{tag}.pyc", info.date_time
            )
            entry.external_attr = 0o644 << 16
            target.writestr(entry, cached.read_bytes(), zipfile.ZIP_DEFLATED)
            compiled += 1
    staged.replace(zip_path)
    return compiled


def lint(template_path: Path) -> list[str]:
    """cfn-lint's errors, and any finding of the serverless rules (cfn-lint-serverless:
    tracing, log retention, failure destinations, ...), in a template. A serverless rule
    that does not apply is silenced on its resource, with the reason
    (``devtools.release.template_operations.SILENCED``)."""
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "-a", "cfn_lint_serverless.rules", "--", str(template_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    findings = [line for line in proc.stdout.splitlines() if re.match(r"^[EW]S\d{4} ", line)]
    if proc.returncode & 2 or proc.returncode & 1 or findings:
        return [f"cfn-lint: {proc.stdout.strip() or proc.stderr.strip()}"]
    return []


def check(service: str, out_dir: Path, stage: str = "aws-prod", root: Path = ROOT) -> PackageReport:
    out_dir = Path(out_dir).resolve()
    zip_path, output = build(service, out_dir, stage, root)
    precompile(zip_path)
    add_api_settings(out_dir / "sam.json", service, root)
    apply_to(out_dir / "sam.json", service, stage, root)
    problems = lint(out_dir / "sam.json")
    if "Could not install dependencies" in output:
        missing = output.split("Could not install dependencies:", 1)[1].split("You will have to", 1)[0]
        problems.append("chalice could not install dependencies: " + " ".join(missing.split()))
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        unzipped = sum(info.file_size for info in zf.infolist())
        in_zip = zip_distributions(names, zf.read)
    tops = {name.split("/")[0].removesuffix(".py") for name in names}
    if "shared/__init__.py" not in names:
        problems.append("shared/ is missing from the zip (the vendor/shared symlink was not followed)")
    problems.extend(ownership_problems(service, names, root))
    problems.extend(lock_problems(service, in_zip, root))
    for provided in sorted(LAMBDA_RUNTIME_PROVIDES & tops):
        problems.append(f"{provided} is in the zip although the Lambda runtime provides it")
    if unzipped > LAMBDA_LIMIT_UNZIPPED:
        problems.append(f"unzipped size {unzipped / 2**20:.0f} MB is over Lambda's 250 MB")
    return PackageReport(service, zip_path, out_dir / "sam.json", zip_path.stat().st_size, unzipped, problems)


def _python_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder.parent)) for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


def ownership_problems(service: str, names: list[str], root: Path = ROOT) -> list[str]:
    """A zip holds its own app's ``chalicelib/`` and ``shared/``, and no other project code."""
    problems = []
    own = _python_files(root / service / "chalicelib") if (root / service / "chalicelib").is_dir() else set()
    in_zip = {n for n in names if n.startswith("chalicelib/") and n.endswith(".py")}
    if in_zip != own:
        foreign = sorted(in_zip - own)
        if foreign:
            problems.append(f"chalicelib/ in the zip holds code that is not {service}'s: {', '.join(foreign)}")
        lost = sorted(own - in_zip)
        if lost:
            problems.append(f"{service}'s own code is missing from the zip: {', '.join(lost)}")
    shared = _python_files(root / "shared")
    stray = sorted(n for n in names if n.startswith("shared/") and n.endswith(".py") and n not in shared)
    if stray:
        problems.append(f"shared/ in the zip holds files that are not in shared/: {', '.join(stray)}")
    tops = {n.split("/")[0] for n in names}
    for folder in sorted(tops & ({"batch", "devtools", "tests", "quote", "backtest", "alerts", "web"} - {service})):
        problems.append(f"{folder}/ is in the zip: only {service}'s app.py, chalicelib/ and shared/ belong there")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Package services and check their zips.")
    parser.add_argument("services", nargs="+")
    parser.add_argument("--out", default=str(ROOT / "build"))
    parser.add_argument("--stage", default="aws-prod")
    args = parser.parse_args(argv)
    failed = False
    for service in args.services:
        out = Path(args.out) / service
        shutil.rmtree(out, ignore_errors=True)
        report = check(service, out, args.stage)
        print(report.summary())
        if report.zipped_bytes > DIRECT_UPLOAD_LIMIT:
            print(
                f"  {service}: over the 50 MB that 'chalice deploy' uploads directly: deploy it with "
                f"'make deploy-{service}' (CloudFormation through an S3 bucket)"
            )
        failed |= bool(report.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
