"""RepScope: compare the representational geometry of image encoders. `streamlit run app.py`."""
import streamlit as st

from views.ui.resources import private_cache

st.set_page_config(page_title="RepScope", page_icon="🔭", layout="wide")
private_cache()  # owner-only (0700) before any page writes to it

# Only finished pages are listed; each later analysis adds its own line here. Every page
# draws the shared sidebar itself (views.ui.sidebar.render_sidebar) so its widgets are part
# of the page run. The folder is `views/`, not `pages/`: Streamlit treats a `pages/` folder
# as legacy auto-discovered pages when a fresh server is first opened on a deep link
# (e.g. /affect), which bypasses this navigation.
navigation = st.navigation([
    st.Page("views/features.py", title="Features", icon="🧮", default=True),
    st.Page("views/affect.py", title="Affect", icon="🎭"),
    st.Page("views/probes.py", title="Layer probes", icon="📈"),
    st.Page("views/alignment.py", title="Alignment", icon="🔗"),
    st.Page("views/similarity.py", title="Similarity", icon="🟰"),
    st.Page("views/explore.py", title="Explore", icon="🔍"),
    st.Page("views/manifolds.py", title="Manifolds", icon="🫧"),
    st.Page("views/inductive_bias.py", title="Inductive bias", icon="🧩"),
    st.Page("views/lab.py", title="Objective lab", icon="🧪"),
    st.Page("views/studies.py", title="Studies", icon="🗂️"),
])
navigation.run()
