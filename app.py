"""RepScope: compare the representational geometry of image encoders. `streamlit run app.py`."""
import streamlit as st

from core.studies import analyses
from views.ui.resources import private_cache

st.set_page_config(page_title="RepScope", page_icon="🔭", layout="wide")
private_cache()  # owner-only (0700) before any page writes to it

# Only finished pages are listed. The analysis pages come from the analysis registry (each entry names its page,
# title, icon and place); the others are listed here with their place among them. Every page draws the shared
# sidebar itself (views.ui.sidebar.render_sidebar) so its widgets are part of the page run. The folder is `views/`,
# not `pages/`: Streamlit treats a `pages/` folder as legacy auto-discovered pages when a fresh server is first
# opened on a deep link (e.g. /affect), which bypasses this navigation.
OTHER_PAGES = [(10, "views/features.py", "Features", "🧮"), (60, "views/explore.py", "Explore", "🔍"),
               (90, "views/lab.py", "Objective lab", "🧪"), (100, "views/studies.py", "Studies", "🗂️")]
pages = sorted(OTHER_PAGES + [(entry.order, entry.page, entry.title, entry.icon) for entry in analyses.analyses()])
navigation = st.navigation([st.Page(page, title=title, icon=icon, default=order == pages[0][0])
                            for order, page, title, icon in pages])
navigation.run()
