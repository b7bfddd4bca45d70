"""Upload the staged folder to the Hugging Face Hub (token from HF_TOKEN or the login cache)."""
from pathlib import Path

import typer
from wasabi import msg

from biomed_spancat.publish.hub import DEFAULT_TIMEOUT, HubError, private_install_command, push_folder
from biomed_spancat.publish.packaging import PackagingError

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def main(
    folder: Path = typer.Argument(..., help="The folder stage-hub wrote"),
    namespace: str = typer.Option(..., "--namespace", help="Hub user or organisation"),
    repo: str = typer.Option(..., "--repo", help="Hub repo name"),
    private: str = typer.Option("true", "--private", help="true (default) or false: the visibility asked for"),
    make_private: bool = typer.Option(
        False, "--make-private", help="Change an existing public repo to private before uploading (else refused)"
    ),
    message: str = typer.Option("Upload en_biomed_spancat", "--message", help="Commit message"),
    timeout: float = typer.Option(DEFAULT_TIMEOUT, "--timeout", help="Seconds to wait for each answer of the Hub"),
):
    if private.lower() not in TRUE + FALSE:
        msg.fail(f"--private takes true or false, not '{private}'", exits=1)
    repo_id = f"{namespace}/{repo}"
    try:
        result = push_folder(folder, repo_id, private=private.lower() in TRUE, make_private=make_private,
                             message=message, timeout=timeout)
    except (HubError, PackagingError) as err:
        msg.fail(f"push: {err}", f"Nothing in {folder} was changed; fix the cause and run push again.", exits=1)
    visibility = "private" if result.private else "public"
    if result.made_private:
        msg.good(f"Made {result.repo_id} private before uploading (--make-private)")
    msg.good(f"{'Created' if result.created else 'Updated'} {visibility} repo {result.repo_id}: {result.repo_url}")
    msg.good(f"Committed {', '.join(result.files)}: {result.commit_url}")
    for note in result.notes:
        msg.warn(note)
    if result.private:
        wheel = result.install_url.rsplit("/", 1)[-1]
        msg.info("The repo is private: accounts with access install with their token read from HF_TOKEN or "
                 "`hf auth login` (never on the command line):")
        print(f"    {private_install_command(result.repo_id, wheel)}")
    else:
        msg.info(f"Install with: pip install {result.install_url}")


if __name__ == "__main__":
    typer.run(main)
