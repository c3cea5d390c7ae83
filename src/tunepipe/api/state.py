"""The long-lived objects of one server process, built in the lifespan and kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from sqlalchemy import Engine

from tunepipe.db.log_writer import LogWriter
from tunepipe.db.secrets import SecretBox
from tunepipe.services.auth import Authenticator
from tunepipe.services.base_models import BaseModelService
from tunepipe.services.chat import ChatService
from tunepipe.services.dataset_jobs import DatasetJobService
from tunepipe.services.datasets import DatasetService
from tunepipe.services.fine_tunes import FineTuneService
from tunepipe.services.local_models import LocalModels
from tunepipe.services.logs import LogService
from tunepipe.services.providers import ProviderService
from tunepipe.services.pruning import PruningService
from tunepipe.services.routing import Router
from tunepipe.settings import Settings


@dataclass(slots=True)
class AppState:
    settings: Settings
    engine: Engine
    box: SecretBox
    session: aiohttp.ClientSession
    writer: LogWriter
    auth: Authenticator
    router: Router
    chat: ChatService
    logs: LogService
    datasets: DatasetService
    providers: ProviderService
    base_models: BaseModelService
    local: LocalModels
    pruning: PruningService
    dataset_jobs: DatasetJobService
    fine_tunes: FineTuneService
