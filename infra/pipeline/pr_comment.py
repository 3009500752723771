"""Post `pulumi preview` output to the Azure Repos pull request that triggered the run.

    python infra/pipeline/pr_comment.py --title "Pulumi preview" --section dev=preview-dev.txt \
        --section prod=preview-prod.txt

Uses the Azure DevOps REST API (Pull Request Threads) with the job's System.AccessToken, which the
pipeline maps to SYSTEM_ACCESSTOKEN; the other values are predefined variables Azure Pipelines exports
to every step (SYSTEM_COLLECTIONURI, SYSTEM_TEAMPROJECTID, BUILD_REPOSITORY_ID,
SYSTEM_PULLREQUEST_PULLREQUESTID). One thread per pull request, found again by a hidden marker and
updated on later runs instead of adding a new comment each push. Outside a pull request run it prints
the comment and exits 0. The build service identity needs "Contribute to pull requests" on the repo.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx

API_VERSION = "7.1"
MARKER = "<!-- lakehouse-mlops:pulumi-preview -->"
MAX_SECTION_CHARS = 60_000  # a comment holds up to 150,000 characters; two sections must fit


def summarize(text: str) -> list[str]:
    """The resource counts under pulumi's last `Resources:` heading, and the first error line if any."""
    lines = text.splitlines()
    summary: list[str] = []
    starts = [i for i, line in enumerate(lines) if line.strip() == "Resources:"]
    if starts:
        for line in lines[starts[-1] + 1:]:
            if not line.strip() or not line[:1].isspace():
                break
            summary.append(line.strip())
    error = next((line.strip() for line in lines if line.lstrip().startswith("error:")), None)
    return summary + ([error] if error else [])


def section(name: str, path: Path) -> str:
    """One collapsible block of preview output, with the resource summary lines shown outside it."""
    if not path.is_file():
        return f"**{name}**: no preview output (the preview step failed before writing {path.name}).\n"
    text = path.read_text(errors="replace").rstrip()
    summary = summarize(text)
    if len(text) > MAX_SECTION_CHARS:
        text = "... (truncated: the full output is in the pipeline log)\n" + text[-MAX_SECTION_CHARS:]
    lines = [f"**{name}**" + (": " + ", ".join(summary) if summary else ""), "",
             f"<details><summary>{name} preview</summary>", "", "```", text.replace("```", "'''"), "```",
             "", "</details>", ""]
    return "\n".join(lines)


def comment_body(title: str, sections: list[tuple[str, Path]]) -> str:
    parts = [MARKER, f"### {title}", ""]
    parts += [section(name, path) for name, path in sections]
    return "\n".join(parts)


def _threads_url(env: dict[str, str]) -> str:
    collection = env["SYSTEM_COLLECTIONURI"].rstrip("/")
    project = env.get("SYSTEM_TEAMPROJECTID") or env["SYSTEM_TEAMPROJECT"]
    return (f"{collection}/{project}/_apis/git/repositories/{env['BUILD_REPOSITORY_ID']}"
            f"/pullRequests/{env['SYSTEM_PULLREQUEST_PULLREQUESTID']}/threads")


def post(body: str, env: dict[str, str], client: httpx.Client | None = None) -> str:
    """Create the preview thread, or update its first comment when a previous run created it."""
    url = _threads_url(env)
    params = {"api-version": API_VERSION}
    headers = {"Authorization": f"Bearer {env['SYSTEM_ACCESSTOKEN']}"}
    own = client is None
    client = client or httpx.Client(timeout=30)
    try:
        threads = client.get(url, params=params, headers=headers)
        threads.raise_for_status()
        for thread in threads.json().get("value", []):
            comments = thread.get("comments") or []
            if comments and MARKER in (comments[0].get("content") or ""):
                r = client.patch(f"{url}/{thread['id']}/comments/{comments[0]['id']}", params=params,
                                 headers=headers, json={"content": body})
                r.raise_for_status()
                return f"updated thread {thread['id']}"
        r = client.post(url, params=params, headers=headers, json={
            "comments": [{"parentCommentId": 0, "content": body, "commentType": 1}],
            "status": 1,
        })
        r.raise_for_status()
        return f"created thread {r.json().get('id')}"
    finally:
        if own:
            client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Post pulumi preview output to the pull request.")
    parser.add_argument("--title", default="Pulumi preview")
    parser.add_argument("--section", action="append", default=[], metavar="NAME=FILE",
                        help="a named preview output file (repeatable)")
    args = parser.parse_args(argv)
    sections = []
    for item in args.section:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            parser.error(f"--section takes NAME=FILE, got {item!r}")
        sections.append((name, Path(path)))
    body = comment_body(args.title, sections)
    env = dict(os.environ)
    needed = ["SYSTEM_COLLECTIONURI", "BUILD_REPOSITORY_ID", "SYSTEM_PULLREQUEST_PULLREQUESTID", "SYSTEM_ACCESSTOKEN"]
    missing = [k for k in needed if not env.get(k)] + (
        [] if env.get("SYSTEM_TEAMPROJECTID") or env.get("SYSTEM_TEAMPROJECT") else ["SYSTEM_TEAMPROJECTID"])
    if missing:
        print(body)
        print(f"not a pull request run with an access token ({', '.join(missing)} unset): printed only")
        return 0
    try:
        print(post(body, env))
    except httpx.HTTPError as exc:
        print(f"error: could not post the preview to the pull request: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
