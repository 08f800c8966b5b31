"""peftshim: the Python training shim started by peftctl (`python -m peftshim train --job job.json`)."""
