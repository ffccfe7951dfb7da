"""Every generated block of the documents (<!-- generated:NAME --> ... <!-- end:NAME -->) is what its
script writes from the committed files today: each writer's blocks() (the text its main writes) is
filled into the committed document with the writer's own fill and changes nothing. Nothing is
written and no model is scored; figures are not compared (their PNG bytes vary)."""
import difflib
import importlib.util
import os
import re
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "experiments"))
sys.path.insert(0, os.path.join(ROOT, "experiments", "recipe"))
import report  # noqa: E402
import summarize  # noqa: E402


def load_script(path, name):
    """A script by its path: experiments/dynamic/run.py and experiments/recipe/run.py share a name."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the command that rewrites a writer's blocks: what a failure tells the reader to run
WRITERS = {"python experiments/report.py": report.blocks,
           "python experiments/recipe/summarize.py": summarize.blocks,
           "python experiments/recipe/slower.py": load_script("experiments/recipe/slower.py", "slower").blocks,
           "python experiments/dynamic/run.py experiments/recipe/runs/m30_clock/cpu30_s1{1,2,3} "
           "(scores only what results.json lacks)": load_script("experiments/dynamic/run.py", "dynamic_run").blocks}
MARKER = re.compile(r"^<!-- generated:(\S+) -->", re.M)


def documents():
    """The documents that may hold generated blocks: README.md, REPORT.md, docs/ and experiments/
    (runs/ left out: run records, not documents), as paths relative to ROOT."""
    found = ["README.md", "REPORT.md"]
    for top in ("docs", "experiments"):
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = sorted(d for d in dirs if d != "runs")
            found += [os.path.relpath(os.path.join(folder, f), ROOT).replace(os.sep, "/")
                      for f in sorted(files) if f.endswith(".md")]
    return found


def read(document):
    with open(os.path.join(ROOT, document), encoding="utf-8") as f:
        return f.read()


def closed(text, name):
    """Whether text holds the block `name`, its start and end markers as fill finds them."""
    return re.search(rf"<!-- generated:{re.escape(name)} -->\n.*?<!-- end:{re.escape(name)} -->", text, re.S) is not None


def regenerated():
    """{(document, block name): (the command that writes it, its text from the committed files)}."""
    found = {}
    for command, blocks in WRITERS.items():
        for key, text in blocks(ROOT).items():
            assert key not in found, f"{key} is written by two scripts: {found[key][0]} and {command}"
            found[key] = (command, text)
    return found


def test_every_block_in_the_documents_has_a_writer_and_every_writers_block_is_in_its_document():
    in_documents = [(document, name) for document in documents() for name in MARKER.findall(read(document))]
    assert len(in_documents) == len(set(in_documents)), "a block's markers appear twice in one document"
    written = regenerated()
    orphans = [f"{document}, block {name}: no script writes it"
               for document, name in sorted(set(in_documents) - set(written))]
    missing = [f"{document}, block {name}: `{written[document, name][0]}` writes it, the document has no such block"
               for document, name in sorted(set(written) - set(in_documents))]
    unclosed = [f"{document}, block {name}: no <!-- end:{name} --> after its start"
                for document, name in in_documents if not closed(read(document), name)]
    assert not orphans + missing + unclosed, "\n".join(orphans + missing + unclosed)


def test_every_generated_block_is_what_its_script_writes_from_the_committed_files():
    differ = []
    for (document, name), (command, text) in sorted(regenerated().items()):
        committed = read(document)
        if not closed(committed, name):
            continue   # the other test names it
        rewritten = report.fill(committed, name, text)   # what the writer would write: the same fill
        if rewritten != committed:
            diff = difflib.unified_diff(committed.splitlines(), rewritten.splitlines(), "committed", "regenerated",
                                        lineterm="", n=0)
            differ.append(f"{document}, block {name}: differs from what `{command}` writes; run it to rewrite the "
                          f"block (or find why the committed files no longer give it)\n" + "\n".join(list(diff)[:12]))
    assert not differ, "\n\n".join(differ)
