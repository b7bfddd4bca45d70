"""Upload the staged folder to the Hugging Face Hub (token from HF_TOKEN or the login cache)."""
from pathlib import Path

import typer
from wasabi import msg

from biomed_spancat.hub import HubError, push_folder

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def main(
    folder: Path = typer.Argument(..., help="The folder stage-hub wrote"),
    namespace: str = typer.Option(..., "--namespace", help="Hub user or organisation"),
    repo: str = typer.Option(..., "--repo", help="Hub repo name"),
    private: str = typer.Option("true", "--private", help="true (default) or false: visibility of a new repo"),
    message: str = typer.Option("Upload en_biomed_spancat", "--message", help="Commit message"),
):
    if private.lower() not in TRUE + FALSE:
        msg.fail(f"--private takes true or false, not '{private}'", exits=1)
    repo_id = f"{namespace}/{repo}"
    try:
        result = push_folder(folder, repo_id, private=private.lower() in TRUE, message=message)
    except HubError as err:
        msg.fail(f"push: {err}", f"Nothing in {folder} was changed; fix the cause and run push again.", exits=1)
    visibility = "private" if result.private else "public"
    msg.good(f"{'Created' if result.created else 'Updated'} {visibility} repo {result.repo_id}: {result.repo_url}")
    msg.good(f"Committed {', '.join(result.files)}: {result.commit_url}")
    msg.info(f"Install with: pip install {result.install_url}")
    if result.private:
        msg.info("The repo is private: only accounts with access can install from it.")


if __name__ == "__main__":
    typer.run(main)
