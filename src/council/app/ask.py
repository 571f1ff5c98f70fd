"""Asking models, from flags to exit code: resolve settings, build the plan, dry-run or run it.

`council oracle` and `council deliberate` share everything but the plan they build
and the engine that runs it: one `resolve` (question, context, config, preset,
personas) and one tail (`--dry-run` prints the plan; otherwise start the embedded
server if needed, run, record, and return the exit code).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from council.app.flags import SETTING_FLAGS, AskFlags
from council.app.inputs import read_context_files, read_inputs, stdin_kind
from council.app.model_options import parse_model_options
from council.app.project_notes import project_notes
from council.config.endpoint_settings import EndpointSettings
from council.config.files import UserConfig
from council.config.personas import Persona, PersonaCatalog
from council.config.settings import (
    NOTHING_CONFIGURED,
    Layer,
    ResolvedSettings,
    builtin_profile,
    history_disabled_by_env,
    load_settings,
    profile_endpoint,
    split_names,
)
from council.engine.plan import (
    DeliberationPlan,
    OraclePlan,
    build_deliberation_plan,
    build_oracle_plan,
)
from council.errors import UsageError
from council.render import OutputMode, choose_mode
from council.store.recorder import RecordOptions

if TYPE_CHECKING:
    from council.app.escalate import EscalateFlags, EscalateOptions
    from council.engine.escalation import Escalation
    from council.store.followup import EarlierRun
    from council.store.resume import ResumedCouncil

__all__ = [
    "AskRequest",
    "FollowUp",
    "ResolvedCouncil",
    "ask_deliberation",
    "ask_oracle",
    "ask_resume",
    "deliberation_plan",
    "oracle_plan",
    "plan_deliberation",
    "plan_oracle",
    "resolve_council",
    "serving_council",
    "serving_plan",
    "setting_flags_given",
    "with_defaults",
    "with_system",
]


@dataclass(kw_only=True)
class ResolvedCouncil:
    """A council resolved from flags (or the API's arguments), preset and config: who sits
    on it, where they are asked, with what options; no question yet."""

    catalog: PersonaCatalog
    personas: list[Persona]
    arbiter: Persona
    settings: ResolvedSettings
    user: UserConfig
    preset: str | None = None
    arbiter_fallback: list[Persona] = field(default_factory=list)
    # The endpoints of the profiles personas name (`endpoint:`, `name@profile`).
    endpoints: dict[str, EndpointSettings] = field(default_factory=dict)
    # Model options for every call (`-o KEY VALUE`, or a resumed run's own).
    options: dict[str, Any] = field(default_factory=dict)
    # The files of --context, given with every question.
    attachments: list[Any] = field(default_factory=list)
    # What the CLI says on stderr before a run (a project's endpoint, the embedded model
    # standing in for none configured), one line each; the API keeps them on its results.
    notes: list[str] = field(default_factory=list)
    # A preset's `escalate:` as written (checked): `council oracle` escalates by it.
    escalate: Any = None
    # The preset's `jury:` (`council judge`'s jurors), unless -p or -m chose the members.
    jury: list[Persona] = field(default_factory=list)

    def record_options(self, *, no_history: bool, no_store_text: bool) -> RecordOptions | None:
        """How to record the run: None when the flag, COUNCIL_HISTORY or the config says not."""
        if no_history or history_disabled_by_env() or self.user.values.get("history") is False:
            return None
        store_text = not no_store_text and self.user.values.get("store_text") is not False
        return RecordOptions(store_text=store_text, preset=self.preset)

    def on(
        self, endpoint: EndpointSettings, endpoints: dict[str, EndpointSettings]
    ) -> ResolvedCouncil:
        """The same council on these endpoints (the run's, and its personas' profiles')."""
        settings = dataclasses.replace(self.settings, endpoint=endpoint)
        return dataclasses.replace(self, settings=settings, endpoints=dict(endpoints))

    def member(self, name: str) -> Persona:
        """A persona of the catalog by name, with the run's temperature and max_tokens."""
        return with_defaults(self.catalog.get(name), self.settings)


@dataclass(kw_only=True)
class AskRequest(ResolvedCouncil):
    """Everything a model-asking command resolved from its flags, preset and config."""

    question: str
    mode: OutputMode


def setting_flags_given(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Setting flags by parameter name -> the given ones by setting name, and their flags."""
    flags: dict[str, Any] = {}
    flag_names: dict[str, str] = {}
    for parameter, value in values.items():
        if value is None:
            continue
        setting, flag = SETTING_FLAGS[parameter]
        flags[setting] = split_names(value, flag) if setting == "personas" else value
        flag_names[setting] = flag
    return flags, flag_names


def budget_limits(flags: AskFlags) -> dict[str, Any]:
    """--budget-usd and --max-tokens-total, checked, as the plan builders take them."""
    usd, tokens = flags.budget_usd, flags.max_tokens_total
    if usd is not None and not (math.isfinite(usd) and usd > 0):
        raise UsageError(
            f"--budget-usd {usd:g}: expected a number of US dollars above 0",
            "e.g. --budget-usd 0.05",
        )
    if tokens is not None and tokens < 1:
        raise UsageError(
            f"--max-tokens-total {tokens}: expected a whole number of at least 1",
            "e.g. --max-tokens-total 20000",
        )
    return {"budget_usd": usd, "max_tokens_total": tokens}


def _personas_from(
    settings: ResolvedSettings, preset: Any, catalog: PersonaCatalog
) -> list[Persona]:
    value = settings.get("personas")
    if settings.sources["personas"].startswith("preset") and preset.personas is not None:
        chosen = list(preset.personas)
    else:
        names = split_names(value, "--personas") if isinstance(value, str) else list(value)
        chosen = catalog.resolve(names)
    return [with_defaults(p, settings) for p in chosen]


def with_defaults(persona: Persona, settings: ResolvedSettings) -> Persona:
    """A persona with the run's temperature/max_tokens where it sets none of its own."""
    temperature = settings.get("temperature")
    max_tokens = settings.get("max_tokens")
    return replace(
        persona,
        temperature=persona.temperature if persona.temperature is not None else temperature,
        max_tokens=persona.max_tokens if persona.max_tokens is not None else max_tokens,
    )


def with_system(persona: Persona, system: str | None) -> Persona:
    """A persona with `--system` appended to its own system prompt (None: as it is)."""
    if system is None:
        return persona
    return replace(persona, system=f"{persona.system.rstrip()}\n\n{system.strip()}")


def _question_and_context(
    flags: AskFlags, command: str, resumed: ResumedCouncil | None
) -> tuple[str, list[Any]]:
    """The question and attachments, read now; a resumed council's as first asked.

    A resumed council never reads standard input: its question and context are the
    recorded ones, and reading a pipe it would not use could only hang or mislead.
    """
    if resumed is None:
        return read_inputs(
            flags.query, list(flags.context or []), use_stdin=not flags.no_stdin, command=command
        )
    if not flags.no_stdin and stdin_kind() in ("pipe", "file"):
        sys.stderr.write(
            "council: note: standard input is not read with --resume; the council goes on "
            "with its recorded question and context\n"
        )
    return resumed.question, []


def _checked_values(flags: AskFlags, values: dict[str, Any]) -> dict[str, Any]:
    """The setting flags that do not go together refused; --model-path's endpoint filled in."""
    if values.get("endpoint") is not None and values.get("base_url") is not None:
        raise UsageError("--endpoint and --base-url are exclusive", "give one of them")
    if values.get("model_path") is not None:
        if values.get("base_url") is not None:
            raise UsageError(
                "--model-path runs a model here; it does not go with --base-url",
                "drop one of them",
            )
        endpoint = values.get("endpoint") or "local"
        values = {**values, "model_path": str(values["model_path"]), "endpoint": endpoint}
    if flags.system is not None and not flags.system.strip():
        raise UsageError("--system is empty", 'give the instruction, e.g. --system "Be terse."')
    return values


def _resolve(
    flags: AskFlags,
    values: dict[str, Any],
    resumed: ResumedCouncil | None = None,
    command: str = "oracle",
    earlier: EarlierRun | None = None,
) -> AskRequest:
    """The CLI's council: read the question and context, resolve every setting, and say
    the council's notes on stderr.

    `values` are the command's setting flags by parameter name (None: not given).
    With `resumed`, the council (question, personas, arbiter, rounds...) is the
    recorded one, and the endpoint it used ranks just below the flags. With `earlier`
    (a follow-up), the council is that run's where no flag says otherwise.
    """
    if flags.json_output and flags.jsonl_output:
        raise UsageError("--json and --jsonl are exclusive", "pick one")
    values = _checked_values(flags, values)
    options = resumed.options if resumed else parse_model_options(flags.option)
    if earlier is not None and not flags.option:
        options = dict(earlier.options)
    question, attachments = _question_and_context(flags, command, resumed)
    council = _members(
        flags, values, resumed, options=options, attachments=attachments, earlier=earlier
    )
    for note in council.notes:
        sys.stderr.write(note + "\n")
    mode = choose_mode(
        json_output=flags.json_output,
        jsonl_output=flags.jsonl_output,
        stdout_is_tty=sys.stdout.isatty(),
    )
    fields = {f.name: getattr(council, f.name) for f in dataclasses.fields(council)}
    return AskRequest(**fields, question=question, mode=mode)


def resolve_council(
    flags: AskFlags,
    values: dict[str, Any],
    *,
    require_key: bool = True,
) -> ResolvedCouncil:
    """The council without a question (a batch asks it each item's; the API, each call's):
    settings, members, --context files. Nothing is read from standard input and nothing
    written: the notes the CLI would say are on the result.

    `require_key=False`: the run's endpoint may lack its key (the API is given one).
    """
    values = _checked_values(flags, values)
    options = parse_model_options(flags.option)
    attachments = read_context_files(list(flags.context or []))
    return _members(
        flags, values, None, options=options, attachments=attachments, require_key=require_key
    )


def _members(
    flags: AskFlags,
    values: dict[str, Any],
    resumed: ResumedCouncil | None,
    *,
    options: dict[str, Any],
    attachments: list[Any],
    require_key: bool = True,
    earlier: EarlierRun | None = None,
) -> ResolvedCouncil:
    """Load config and preset, resolve every setting, and choose the members."""
    extra = None
    if resumed is not None or earlier is not None:
        source = resumed or earlier
        assert source is not None
        recorded = {
            k: v for k, v in {**source.endpoint, **source.settings}.items() if v is not None
        }
        name = f"run {source.run_id}" if resumed else f"continued run {source.run_id}"
        extra = Layer(name, recorded, {})
    given, flag_names = setting_flags_given(values)
    loaded = load_settings(
        given,
        flag_names,
        flags.preset,
        require_key=require_key and not flags.dry_run,
        below_flags=extra,
    )
    catalog, chosen_preset, settings = loaded.catalog, loaded.preset, loaded.settings
    notes: list[str] = []
    if not flags.dry_run:  # a local server's own model, when nothing chose one
        from council.app.endpoints import served_model

        settings = served_model(settings, notes.append)
    if NOTHING_CONFIGURED in settings.sources.get("endpoint", ""):
        notes.append(
            f"council: {NOTHING_CONFIGURED}; using the embedded local model "
            "(SmolLM2-135M, small and rough). 'council endpoints list' shows how to set one."
        )
    fallback: list[Persona] = []
    if resumed is not None:
        personas = [with_defaults(p, settings) for p in resumed.personas]
        arbiter = resumed.arbiter
    else:
        fallback = _fallback_from(settings, chosen_preset, catalog)
        personas = _personas_from(settings, chosen_preset, catalog)
        if flags.models:
            chosen = personas if settings.sources["personas"] != "default" else None
            members = _council_of_models(flags.models, chosen, loaded.user)
            personas = [with_defaults(p, settings) for p in members]
        from_preset = settings.sources["arbiter"].startswith("preset")
        if from_preset and chosen_preset is not None and chosen_preset.arbiter is not None:
            arbiter = chosen_preset.arbiter
        else:
            arbiter = catalog.get(settings.get("arbiter"))
        if earlier is not None:
            personas, arbiter = _earlier_members(earlier, flags, personas, arbiter, catalog)
        personas = [with_system(p, flags.system) for p in personas]
    jury: list[Persona] = []
    own = flags.personas or flags.models
    if resumed is None and chosen_preset is not None and chosen_preset.jury and not own:
        jury = [with_system(with_defaults(p, settings), flags.system) for p in chosen_preset.jury]
    # The jury's profiles are looked up by `council judge` alone (`app/jury_cases.py`):
    # another command of the preset must not need their keys.
    members = [*personas, arbiter, *fallback]
    notes += project_notes(settings, catalog, members, chosen_preset)
    endpoints = {
        p.endpoint: profile_endpoint(
            p.endpoint,
            loaded.user,
            settings.endpoint,
            source=f"persona {p.name}",
            require_key=not flags.dry_run,
        )
        for p in members
        if p.endpoint
    }
    return ResolvedCouncil(
        catalog=catalog,
        personas=personas,
        arbiter=with_defaults(arbiter, settings),
        settings=settings,
        user=loaded.user,
        preset=resumed.preset if resumed else flags.preset or (earlier and earlier.preset),
        arbiter_fallback=[with_defaults(p, settings) for p in fallback],
        endpoints=endpoints,
        options=options,
        attachments=attachments,
        jury=jury,
        notes=notes,
        escalate=chosen_preset.values.get("escalate") if chosen_preset is not None else None,
    )


def oracle_plan(
    request: ResolvedCouncil, query: str, *, synthesize: bool, **voting: Any
) -> OraclePlan:
    """The oracle plan for `query` with the resolved council (`voting`: --vote, --rank)."""
    return build_oracle_plan(
        query=query,
        personas=request.personas,
        endpoint=request.settings.endpoint,
        attachments=request.attachments,
        arbiter=request.arbiter if synthesize else None,
        arbiter_fallback=request.arbiter_fallback if synthesize else [],
        endpoints=request.endpoints,
        options=request.options,
        **voting,
    )


def deliberation_plan(
    request: ResolvedCouncil,
    query: str,
    *,
    max_wasted_tokens: int | None,
    question_text: str | None = None,
    speculative: bool | None = None,
    **voting: Any,
) -> DeliberationPlan:
    """The deliberation plan for `query` with the resolved council, rounds and speculation
    (`speculative`: instead of the council's setting)."""
    settings = request.settings
    is_speculative = bool(settings.get("speculative") if speculative is None else speculative)
    if max_wasted_tokens is not None and not is_speculative:
        raise UsageError(
            "--max-wasted-tokens only applies with --speculative", "add --speculative or drop it"
        )
    return build_deliberation_plan(
        query=query,
        personas=request.personas,
        arbiter=request.arbiter,
        arbiter_fallback=request.arbiter_fallback,
        endpoints=request.endpoints,
        endpoint=settings.endpoint,
        attachments=request.attachments,
        rounds=int(settings.get("rounds")),
        threshold=float(settings.get("threshold")),
        speculative=is_speculative,
        max_wasted_tokens=max_wasted_tokens,
        question_text=question_text,
        options=request.options,
        **voting,
    )


@contextlib.contextmanager
def serving_plan(plan: Any) -> Iterator[Any]:
    """The plan with its endpoints served (the embedded model started where one runs here)."""
    from council.endpoint.local import serving

    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(serving(plan.endpoint))
        extra = {name: stack.enter_context(serving(e)) for name, e in plan.endpoints.items()}
        yield replace(plan, endpoint=endpoint, endpoints=extra)


@contextlib.contextmanager
def serving_council(council: ResolvedCouncil) -> Iterator[ResolvedCouncil]:
    """The council on its endpoints as served (the embedded model started where one runs)."""
    from council.endpoint.local import serving

    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(serving(council.settings.endpoint))
        extra = {name: stack.enter_context(serving(e)) for name, e in council.endpoints.items()}
        yield council.on(endpoint, extra)


# The member a model answers as when a council of models (-m a -m b) names no personas.
PLAIN_SYSTEM = "You are a careful, knowledgeable assistant. Answer the question directly and well."


def _model_and_profile(spec: str, user: UserConfig) -> tuple[str, str | None]:
    """`llama3.1@ollama` -> ("llama3.1", "ollama") when `ollama` is a profile; else as given
    (a model name may itself hold an @)."""
    model, at, profile = spec.strip().rpartition("@")
    if at and model and (profile in user.profiles or builtin_profile(profile) is not None):
        return model, profile
    return spec.strip(), None


def _council_of_models(
    specs: list[str], personas: list[Persona] | None, user: UserConfig
) -> list[Persona]:
    """Each persona once per model (`persona · model`), or each model as one plain member."""
    members: list[Persona] = []
    for spec in specs:
        model, profile = _model_and_profile(spec, user)
        if personas is None:
            plain = Persona(name=model, description="a plain member", system=PLAIN_SYSTEM)
            members.append(replace(plain, model=model, endpoint=profile))
            continue
        for persona in personas:
            name = f"{persona.name} · {model}"
            members.append(
                replace(persona, name=name, model=model, endpoint=profile or persona.endpoint)
            )
    names = [m.name for m in members]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"-m lists {', '.join(twice)} twice", "give each model once")
    return members


def _earlier_members(
    earlier: EarlierRun,
    flags: AskFlags,
    personas: list[Persona],
    arbiter: Persona,
    catalog: PersonaCatalog,
) -> tuple[list[Persona], Persona]:
    """A follow-up's members: the continued run's, as it asked them (system prompts as
    sent), unless a flag chose others (-p, -m, --preset; --arbiter)."""
    if not (flags.personas or flags.model or flags.preset) and earlier.personas:
        personas = list(earlier.personas)
    if flags.arbiter is None and not flags.preset:
        if earlier.arbiter is not None:
            arbiter = earlier.arbiter
        elif earlier.arbiter_name:
            with contextlib.suppress(UsageError):  # gone since: the configured one judges
                arbiter = catalog.get(earlier.arbiter_name)
    return personas, arbiter


def _fallback_from(
    settings: ResolvedSettings, preset: Any, catalog: PersonaCatalog
) -> list[Persona]:
    """Who judges, in order, when the arbiter cannot (`arbiter_fallback:`); [] for nobody."""
    value = settings.get("arbiter_fallback")
    if value is None:
        return []
    source = settings.sources.get("arbiter_fallback", "")
    if source.startswith("preset") and preset is not None and preset.arbiter_fallback is not None:
        return list(preset.arbiter_fallback)
    names = split_names(value, "arbiter_fallback") if isinstance(value, str) else list(value)
    return catalog.resolve(names)


def _dry_run_or_run(
    plan: Any,
    request: AskRequest,
    flags: AskFlags,
    *,
    engine: str,
    record: RecordOptions | None,
    **run_options: Any,
) -> int:
    """`--dry-run` prints the plan and where each setting came from; otherwise run it."""
    if flags.dry_run:
        _print_dry_run(plan, request, flags, engine=engine, resume=run_options.get("resume"))
        return 0
    # Only a real run pays for the engine and openai: a dry run never imports them.
    from council.app.run import run_deliberation, run_oracle

    run = run_oracle if engine == "oracle" else run_deliberation
    with serving_plan(plan) as served:
        return run(
            served,
            request.mode,
            quiet=flags.quiet,
            verbose=flags.verbose,
            record=record,
            **run_options,
        )


def _vote_choices(flags: AskFlags) -> tuple[str, ...]:
    """--choices, checked: it needs --vote and two choices at least; () for free answers."""
    if flags.choices is None:  # free answers: the ballots' module is not imported for them
        return ()
    from council.engine.ballots import parse_choices

    if not flags.vote:
        raise UsageError("--choices goes with --vote", "add --vote, or drop --choices")
    choices = parse_choices(flags.choices)
    if len(choices) < 2:
        raise UsageError(
            f"--choices {flags.choices!r} names fewer than two choices",
            "give them separated by commas, e.g. --choices A,B,C,D or --choices yes,no",
        )
    return choices


def vote_counting(flags: AskFlags) -> dict[str, Any]:
    """--stop-rule and --weighting as the oracle plan takes them, checked: they need
    --vote, and a known rule, threshold and weighting."""
    given = [
        flag
        for flag, value in (("--stop-rule", flags.stop_rule), ("--weighting", flags.weighting))
        if value is not None
    ]
    if given and not flags.vote:
        raise UsageError(f"{given[0]} goes with --vote", f"add --vote, or drop {given[0]}")
    if not flags.vote:
        return {}
    from council.engine.model import WEIGHTINGS
    from council.engine.stopping import stop_rule

    try:
        rule = stop_rule(flags.stop_rule)
    except ValueError as error:
        raise UsageError(str(error), "see --stop-rule in council oracle --help") from None
    weighting = (flags.weighting or "equal").strip().lower()
    if weighting not in WEIGHTINGS:
        raise UsageError(f"no weighting {flags.weighting!r}", f"use one of {', '.join(WEIGHTINGS)}")
    return {"vote_stop": rule, "vote_weighting": weighting}


def _voting_checks(flags: AskFlags, synthesize: bool, personas: int) -> None:
    """The combinations --vote and --rank do not take, refused before anything is sent."""
    if flags.vote and flags.rank:
        raise UsageError("--vote and --rank are exclusive", "pick one of them")
    if flags.vote and synthesize and flags.choices is not None:
        # Without --choices, --synthesize has the arbiter pick the most consistent free
        # answer (engine/consistency.py); with them, the count is the answer.
        raise UsageError(
            "--vote --choices's answer is the majority; it takes no --synthesize",
            "drop --synthesize (with free answers, --vote -s has the arbiter pick the most "
            "consistent one)",
        )
    if flags.rank and personas < 3:
        raise UsageError(
            f"--rank needs at least 3 personas (each ranks the others'); this council has "
            f"{personas}",
            "add personas with -p, or drop --rank",
        )


# --rank re-asks this many reviewers in the reverse order unless told otherwise: one
# call more, at the same time as the reviews, so a ranking takes no longer.
DEFAULT_POSITION_CHECKS = 1


def _bias_checks(flags: AskFlags) -> dict[str, Any]:
    """--position-checks and --self-check-rate as the plan takes them (none without --rank)."""
    checks, rate = flags.position_checks, flags.self_check_rate
    if not flags.rank:
        if checks is not None or rate is not None:
            given = "--position-checks" if checks is not None else "--self-check-rate"
            raise UsageError(f"{given} measures --rank's reviewers", f"add --rank, or drop {given}")
        return {}
    if checks is not None and checks < 0:
        raise UsageError(f"--position-checks {checks} is negative", "give 0 or more")
    if rate is not None and not 0 <= rate <= 1:
        raise UsageError(f"--self-check-rate {rate:g} is not a share", "give 0 to 1, e.g. 0.2")
    return {
        "rank_position_checks": DEFAULT_POSITION_CHECKS if checks is None else checks,
        "rank_self_check_rate": rate or 0.0,
    }


# COUNCIL_VOTE_EARLY_STOP=0 lets every ballot call of --vote finish (an internal switch,
# for comparing: benchmarks/vote_bench.py).
EARLY_STOP_ENV = "COUNCIL_VOTE_EARLY_STOP"


def early_stop_wanted() -> bool:
    return os.environ.get(EARLY_STOP_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _rank_seed(options: dict[str, Any]) -> int:
    """The seed of --rank's shuffles: `-o seed N` when given, else a fresh one (recorded)."""
    seed = options.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed
    import random

    return random.randrange(2**31)


def _prepare_to_send(flags: AskFlags) -> None:
    """A run that will talk to a model imports the SDK meanwhile; a dry run never does."""
    if not flags.dry_run:
        from council.endpoint.preload import import_sdk_meanwhile

        import_sdk_meanwhile()


def _print_dry_run(
    plan: Any, request: AskRequest, flags: AskFlags, *, engine: str, resume: Any
) -> None:
    """The plan, its prices and where each setting came from, as --json or Markdown.

    The render modules are imported here: a run that sends imports them only once its
    answers are in (run_context.py), not before its first request.
    """
    from council.engine.cost import plan_prices, worst_case_usd
    from council.render.costs import prices_markdown
    from council.render.json_out import dumps
    from council.render.markdown import deliberation_plan_markdown, plan_markdown, sources_markdown

    prices, worst = plan_prices(plan), worst_case_usd(plan)
    if flags.json_output:
        plan_dict = plan.to_dict()
        if resume is not None:  # what the resume reuses and asks, not a fresh round 1
            from council.render.markdown import resume_outline

            plan_dict["resume"] = resume_outline(plan, resume).to_dict()
        plan_dict["sources"] = request.settings.sources
        plan_dict["prices"] = [p.to_dict() for p in prices]
        plan_dict["worst_case_usd"] = None if worst is None else round(worst, 6)
        sys.stdout.write(dumps(plan_dict) + "\n")
        return
    markdown: Callable[[Any], str] = (
        plan_markdown if engine == "oracle" else deliberation_plan_markdown
    )
    if resume is not None:  # what the resume asks, not a fresh round 1
        from functools import partial

        from council.render.markdown import resume_plan_markdown

        markdown = partial(resume_plan_markdown, resume=resume)
    sys.stdout.write(
        markdown(plan)
        + prices_markdown(prices, worst, plan.budget_usd, plan.max_tokens_total)
        + sources_markdown(request.settings)
    )


def plan_oracle(
    council: ResolvedCouncil,
    flags: AskFlags,
    query: str,
    *,
    synthesize: bool,
    escalate: EscalateOptions | None = None,
) -> OraclePlan:
    """The plan `council oracle` runs for `query`: --vote, --choices, --rank, --escalate
    and the budget checked against the council."""
    choices = _vote_choices(flags)
    limits = budget_limits(flags)
    _voting_checks(flags, synthesize, len(council.personas))
    escalation = None
    if escalate is not None:
        if flags.rank:
            raise UsageError(
                "--rank asks every persona to rank the others; it does not go with --escalate",
                "drop one of them",
            )
        escalation = _escalation(council, escalate, query)
    return oracle_plan(
        council,
        query,
        synthesize=synthesize,
        vote=flags.vote,
        choices=choices,
        vote_early_stop=early_stop_wanted(),
        **vote_counting(flags),
        rank=flags.rank,
        rank_seed=_rank_seed(council.options) if flags.rank else None,
        **_bias_checks(flags),
        escalation=escalation,
        **limits,
    )


def plan_deliberation(
    council: ResolvedCouncil,
    flags: AskFlags,
    query: str,
    *,
    max_wasted_tokens: int | None,
    question_text: str | None = None,
    escalate: EscalateOptions | None = None,
) -> DeliberationPlan:
    """The plan `council deliberate` runs for `query` (rounds and speculation are the
    council's settings): --vote, --choices, --escalate and the budget checked."""
    if flags.rank:
        raise UsageError("--rank is for council oracle", "drop --rank, or use council oracle")
    _bias_checks(flags)  # without --rank: refused
    choices = _vote_choices(flags)
    limits = budget_limits(flags)
    escalation = None
    if escalate is not None:
        if flags.vote:
            raise UsageError(
                "deliberate --vote ends on a unanimous round already; it does not go with "
                "--escalate",
                "drop one of them (council oracle --vote --escalate escalates a vote)",
            )
        escalation = _escalation(council, escalate, query)
    return deliberation_plan(
        council,
        query,
        max_wasted_tokens=max_wasted_tokens,
        question_text=question_text,
        vote=flags.vote,
        choices=choices,
        escalation=escalation,
        **limits,
    )


def _escalate_options(flags: EscalateFlags | None, preset: Any) -> EscalateOptions | None:
    """The run's escalation from the flags over the preset's; None (most runs): none, and
    nothing of escalation is loaded."""
    if preset is None and (flags is None or flags == type(flags)()):
        return None
    from council.app.escalate import EscalateFlags

    return (flags or EscalateFlags()).options(preset)


def _escalation(council: ResolvedCouncil, options: EscalateOptions, query: str) -> Escalation:
    """The plan's escalation: its panel checked against the council, a shadow run drawn
    (seeded by `-o seed N` and the question, when given)."""
    from council.app.escalate import escalation_for

    seed = council.options.get("seed")
    return escalation_for(
        options, [p.name for p in council.personas], seed=None if seed is None else (seed, query)
    )


@dataclass(frozen=True)
class FollowUp:
    """`--continue` (the latest run) or `--continue-from ID`: the run a question follows."""

    run_id: str | None = None


def _load_earlier(follow_up: FollowUp) -> EarlierRun:
    """The run a follow-up continues, from the history; UsageError when it cannot be."""
    from council.app.conversation import with_conversation
    from council.store.db import HistoryDB
    from council.store.followup import load_earlier

    with HistoryDB.open() as history:
        return load_earlier(history, follow_up.run_id, with_conversation)


def _followed(
    request: AskRequest, earlier: EarlierRun | None, record: RecordOptions | None
) -> tuple[str, RecordOptions | None]:
    """The query a follow-up asks (the conversation so far, then the question) and how it
    is recorded (naming the run it continued); a new question's as they are."""
    if earlier is None:
        return request.question, record
    from council.app.conversation import with_conversation

    query = with_conversation(request.question, earlier.conversation)
    if record is not None:
        record = replace(record, continued_from=earlier.run_id)
    return query, record


def ask_oracle(
    flags: AskFlags,
    *,
    synthesize: bool,
    follow_up: FollowUp | None = None,
    escalate: EscalateFlags | None = None,
) -> int:
    """`council oracle`: every persona at once, optionally a synthesis; the exit code.

    `follow_up`: the question follows an earlier run's answer, asked of the same council
    (with a synthesis when that run had one). `escalate`: --escalate and its flags (a
    preset's `escalate:` applies without them)."""
    _prepare_to_send(flags)
    # Flags that cannot be right are refused before the question or the config is read.
    _vote_choices(flags)
    budget_limits(flags)
    earlier = _load_earlier(follow_up) if follow_up is not None else None
    request = _resolve(flags, flags.setting_values(), earlier=earlier)
    if earlier is not None and earlier.arbiter_name is not None and not flags.vote:
        synthesize = True
    record = request.record_options(no_history=flags.no_history, no_store_text=flags.no_store_text)
    query, record = _followed(request, earlier, record)
    options = _escalate_options(escalate, request.escalate)
    plan = plan_oracle(request, flags, query, synthesize=synthesize, escalate=options)
    return _dry_run_or_run(plan, request, flags, engine="oracle", record=record)


def ask_deliberation(
    flags: AskFlags,
    *,
    resume: str | None,
    follow_up: FollowUp | None = None,
    escalate: EscalateFlags | None = None,
    **settings: Any,
) -> int:
    """`council deliberate`, new, a follow-up, or resumed from the history; the exit code.

    `settings`: rounds, speculative, threshold, max_wasted_tokens (see `_deliberation`).
    """
    if resume is not None and follow_up is not None:
        raise UsageError(
            "--resume goes on with an unfinished council; --continue asks a new question "
            "after a finished one",
            "give one of them",
        )
    _prepare_to_send(flags)
    with contextlib.ExitStack() as held:  # a resumed run's lock, until the run ends
        return _deliberation(
            flags, resume=resume, held=held, follow_up=follow_up, escalate=escalate, **settings
        )


def _deliberation(
    flags: AskFlags,
    *,
    rounds: int | None,
    speculative: bool | None,
    threshold: float | None,
    max_wasted_tokens: int | None,
    resume: str | None,
    held: contextlib.ExitStack,
    follow_up: FollowUp | None = None,
    escalate: EscalateFlags | None = None,
) -> int:
    if flags.rank:
        raise UsageError("--rank is for council oracle", "drop --rank, or use council oracle")
    _vote_choices(flags)  # refused before the history or the config is read
    if resume is not None and flags.vote:
        raise UsageError(
            "--resume continues the recorded council; it takes no --vote", "drop --vote"
        )
    if resume is not None and escalate is not None and escalate.escalate:
        raise UsageError(
            "--resume continues the recorded council; it takes no --escalate",
            "drop --escalate",
        )
    budget_limits(flags)
    resumed = None
    if resume is not None:
        resumed = _load_resumed(
            resume,
            query=flags.query,
            preset=flags.preset,
            personas=flags.personas,
            arbiter=flags.arbiter,
            rounds=rounds,
            threshold=threshold,
            context=flags.context,
            system=flags.system,
            option=flags.option,
        )
        if resumed.lock is not None:
            held.callback(resumed.lock.release)
        if max_wasted_tokens is None:
            max_wasted_tokens = resumed.settings.get("max_wasted_tokens")
        if resumed.resumed_as:
            sys.stderr.write(f"council: {_resumed_before(resumed)}\n")
    earlier = _load_earlier(follow_up) if follow_up is not None else None
    if earlier is not None and max_wasted_tokens is None and speculative is not False:
        max_wasted_tokens = earlier.settings.get("max_wasted_tokens")
    values = flags.setting_values(rounds=rounds, speculative=speculative, threshold=threshold)
    request = _resolve(flags, values, resumed, command="deliberate", earlier=earlier)
    record = request.record_options(no_history=flags.no_history, no_store_text=flags.no_store_text)
    query, record = _followed(request, earlier, record)
    # A resumed council goes on as it was recorded: it escalates no more.
    escalation = None if resumed else _escalate_options(escalate, request.escalate)
    plan = plan_deliberation(
        request,
        flags,
        query,
        max_wasted_tokens=max_wasted_tokens,
        question_text=resumed.question if resumed else None,
        escalate=escalation,
    )
    if record is not None and resumed is not None:
        record = replace(record, resumed_from=resumed.run_id)
    return _dry_run_or_run(
        plan,
        request,
        flags,
        engine="deliberate",
        record=record,
        resume=resumed.state if resumed else None,
    )


def ask_resume(run_id: str, flags: AskFlags) -> int:
    """`council resume ID`: go on with the run as its own command would (`deliberate --resume`).

    Only deliberations resume; for any other run the error says how to see it.
    """
    return ask_deliberation(
        flags,
        rounds=None,
        speculative=None,
        threshold=None,
        max_wasted_tokens=None,
        resume=run_id,
    )


def _resumed_before(resumed: ResumedCouncil) -> str:
    """One line, before any token is spent: this run was resumed already, and what to do."""
    from council.render.times import iso_time

    latest = resumed.resumed_as[-1]
    times = f" ({len(resumed.resumed_as)} times)" if len(resumed.resumed_as) > 1 else ""
    line = (
        f"run {resumed.run_id} was already resumed{times} as run {latest.run_id} at "
        f"{iso_time(latest.started_at)} ({latest.status}); resuming it again asks its "
        "remaining calls again"
    )
    if latest.resumable:
        line += f" (to go on from where that run stopped: council resume {latest.run_id})"
    return line


def _load_resumed(run_id: str, **council_flags: Any) -> ResumedCouncil:
    """The recorded council to continue; flags that would change it are refused."""
    from council.store.db import HistoryDB
    from council.store.resume import load_resume

    given = [name for name, value in council_flags.items() if value is not None]
    if given:
        flags = [f"--{name}" for name in given if name != "query"]
        words = (["question"] if "query" in given else []) + flags
        listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
        drop = "drop it" if len(words) == 1 else "drop them"
        raise UsageError(
            f"--resume continues the recorded council; it takes no {listed}",
            f"{drop}, or start a new council instead",
        )
    with HistoryDB.open() as history:
        return load_resume(history, run_id)
