"""What each ``model.fusion`` puts into a window's representation ``z`` (Sec. 3.2-3.3).

``z`` is the concatenation, in this order, of the parts a fusion holds: the normalised features
``x``, a baseline encoder's embedding, the salience mask ``m`` or the text part ``s`` (the
prompt's sentence embedding, or a fixed random vector per prompt for the random-text control).

=============  ================  ========================================================
fusion         z                 source
=============  ================  ========================================================
features       x                 the paper's "Features" rows
text           s                 a backbone alone (Tables 3-4)
fused          [x || s]          LaScA: ``MPNet(F)`` etc.
baseline       [e]               a baseline encoder's embedding (Table 2)
mask           [x || m]          control: the salience mask without language
random_text    [x || r]          control: a random code per prompt instead of its embedding
=============  ================  ========================================================
"""

PAPER = ("features", "text", "fused", "baseline")
CONTROLS = ("mask", "random_text")
ALL = PAPER + CONTROLS

WITH_FEATURES = ("features", "fused") + CONTROLS   # z holds the normalised features x
WITH_SALIENCE = ("text", "fused") + CONTROLS       # the per-window salient features are needed
WITH_PROMPTS = ("text", "fused", "random_text")    # every window has a prompt
ENCODED = ("text", "fused")                        # prompts go through the sentence transformer
