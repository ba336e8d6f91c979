"""A stored ipywidgets state as static HTML: what an explorer showed when its notebook was saved.

JupyterLab saves every live widget in the notebook's metadata
(``metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]``: one entry per model,
children referenced as ``"IPY_MODEL_<id>"``, images as base64 ``buffers``). A web page has no
kernel, so the controls cannot recompute anything; instead of shipping the ipywidgets JavaScript
(a CDN download, or megabytes vendored), :func:`render_widget` writes the last state as plain
HTML: boxes as flex rows and columns, HTML widgets as their HTML, sliders, drop-downs, buttons
and check boxes as *disabled* form controls showing their values, images inline. Widgets this
module does not know are named, not dropped, so nothing disappears silently.
"""

from __future__ import annotations

import html
from typing import Callable, Dict, Mapping

WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
_REF = "IPY_MODEL_"

State = Mapping[str, Mapping]


def widget_state(notebook_metadata: Mapping) -> Dict[str, Mapping]:
    """The ``{model_id: model}`` map a notebook stored (empty when it stored none)."""
    widgets = notebook_metadata.get("widgets") or {}
    return dict((widgets.get(WIDGET_STATE_MIME) or {}).get("state") or {})


def render_widget(state: State, model_id: str) -> str:
    """Static HTML of widget ``model_id`` and its children, as stored in ``state``.

    Raises:
        KeyError: when ``model_id`` (or a child it references) is not in ``state``.
    """
    model = state[model_id]
    attrs = model.get("state", {})
    if _hidden(state, attrs):
        return ""
    name = model.get("model_name", "")
    renderer = _RENDERERS.get(name)
    if renderer is None:
        return f'<span class="course-widget course-widget-unknown">[{html.escape(name or "widget")}]</span>'
    return renderer(state, model_id, attrs)


def _hidden(state: State, attrs: Mapping) -> bool:
    layout = attrs.get("layout")
    if not (isinstance(layout, str) and layout.startswith(_REF)):
        return False
    style = state.get(layout[len(_REF):], {}).get("state", {})
    return style.get("display") == "none" or style.get("visibility") == "hidden"


def _layout_style(state: State, attrs: Mapping) -> str:
    """The few layout attributes that change what a snapshot looks like (as inline CSS)."""
    layout = attrs.get("layout")
    if not (isinstance(layout, str) and layout.startswith(_REF)):
        return ""
    style = state.get(layout[len(_REF):], {}).get("state", {})
    css = {
        "flex-flow": style.get("flex_flow"),
        "max-width": style.get("max_width"),
        "width": style.get("width"),
        "align-items": style.get("align_items"),
        "justify-content": style.get("justify_content"),
    }
    text = "; ".join(f"{key}: {value}" for key, value in css.items() if value)
    return f' style="{html.escape(text)}"' if text else ""


def _description(attrs: Mapping) -> str:
    text = attrs.get("description") or ""
    return f'<span class="course-widget-label">{html.escape(str(text))}</span>' if text else ""


def _box(direction: str) -> Callable[[State, str, Mapping], str]:
    def render(state: State, model_id: str, attrs: Mapping) -> str:
        children = "".join(render_widget(state, ref[len(_REF):]) for ref in attrs.get("children", []))
        return f'<div class="course-widget course-widget-{direction}"{_layout_style(state, attrs)}>{children}</div>'

    return render


def _html(state: State, model_id: str, attrs: Mapping) -> str:
    # The value is the HTML the course's own explorer wrote (a trusted notebook): kept as is.
    return f'<div class="course-widget course-widget-html">{_description(attrs)}{attrs.get("value", "")}</div>'


def _label(state: State, model_id: str, attrs: Mapping) -> str:
    return f'<span class="course-widget course-widget-text">{html.escape(str(attrs.get("value", "")))}</span>'


def _slider(state: State, model_id: str, attrs: Mapping) -> str:
    value = attrs.get("value")
    bounds = " ".join(f'{key}="{html.escape(str(attrs[key]))}"' for key in ("min", "max", "step") if key in attrs)
    return (
        f'<label class="course-widget course-widget-slider">{_description(attrs)}'
        f'<input type="range" {bounds} value="{html.escape(str(value))}" disabled>'
        f'<span class="course-widget-value">{html.escape(str(value))}</span></label>'
    )


def _choice(state: State, model_id: str, attrs: Mapping) -> str:
    labels = [str(label) for label in attrs.get("_options_labels", [])]
    index = attrs.get("index")
    options = "".join(
        f'<option{" selected" if i == index else ""}>{html.escape(label)}</option>' for i, label in enumerate(labels)
    )
    return (
        f'<label class="course-widget course-widget-choice">{_description(attrs)}'
        f"<select disabled>{options}</select></label>"
    )


def _text(state: State, model_id: str, attrs: Mapping) -> str:
    value = html.escape(str(attrs.get("value", "")))
    return f'<label class="course-widget course-widget-input">{_description(attrs)}<input type="text" value="{value}" disabled></label>'


def _checkbox(state: State, model_id: str, attrs: Mapping) -> str:
    checked = " checked" if attrs.get("value") else ""
    return f'<label class="course-widget course-widget-check"><input type="checkbox"{checked} disabled>{_description(attrs)}</label>'


def _button(state: State, model_id: str, attrs: Mapping) -> str:
    text = html.escape(str(attrs.get("description") or ""))
    return f'<button class="course-widget course-widget-button" type="button" disabled>{text}</button>'


def _image(state: State, model_id: str, attrs: Mapping) -> str:
    buffers = {tuple(b.get("path", ())): b for b in state[model_id].get("buffers", [])}
    data = buffers.get(("value",), {})
    if data.get("encoding") != "base64" or not data.get("data"):
        return ""  # an image the explorer had not drawn yet
    fmt = html.escape(str(attrs.get("format") or "png"))
    return (
        f'<img class="course-widget course-widget-image"{_layout_style(state, attrs)} '
        f'src="data:image/{fmt};base64,{data["data"]}" alt="the explorer\'s figure, as last drawn">'
    )


def _output(state: State, model_id: str, attrs: Mapping) -> str:
    parts = []
    for output in attrs.get("outputs", []):
        data = output.get("data", {})
        if output.get("output_type") == "stream":
            parts.append(f"<pre>{html.escape(''.join(output.get('text', '')))}</pre>")
        elif "text/html" in data:
            parts.append("".join(data["text/html"]))
        elif "image/png" in data:
            parts.append(f'<img src="data:image/png;base64,{"".join(data["image/png"]).strip()}" alt="output">')
        elif "text/plain" in data:
            parts.append(f"<pre>{html.escape(''.join(data['text/plain']))}</pre>")
    return f'<div class="course-widget course-widget-output">{"".join(parts)}</div>'


_RENDERERS: Dict[str, Callable[[State, str, Mapping], str]] = {
    "VBoxModel": _box("column"),
    "BoxModel": _box("column"),
    "GridBoxModel": _box("row"),
    "HBoxModel": _box("row"),
    "HTMLModel": _html,
    "HTMLMathModel": _html,
    "LabelModel": _label,
    "IntSliderModel": _slider,
    "FloatSliderModel": _slider,
    "FloatLogSliderModel": _slider,
    "DropdownModel": _choice,
    "SelectModel": _choice,
    "RadioButtonsModel": _choice,
    "ToggleButtonsModel": _choice,
    "SelectionSliderModel": _choice,
    "TextModel": _text,
    "IntTextModel": _text,
    "FloatTextModel": _text,
    "BoundedIntTextModel": _text,
    "BoundedFloatTextModel": _text,
    "CheckboxModel": _checkbox,
    "ToggleButtonModel": _checkbox,
    "ButtonModel": _button,
    "ImageModel": _image,
    "OutputModel": _output,
}
