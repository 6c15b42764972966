"""The face and video pipeline: faces found (``detect``), tracked (``track``) and aligned (``align``) on video
frames read and written by ``video``; a whole video's face crops (``crop``), finished members run on them
(``predict``), drawn on the frames (``overlay``), plotted as a page (``plot``), and the live loop (``webcam``).

May import: ``ensemble``'s core, the member contract and ``members.training``; a saved fusion is applied by
the caller (the CLI), so nothing here imports the fusion pipeline.
"""
