"""Offline conversions for the ad systems (Yandex Metrica / Direct, Google Ads). Deployed: the
scheduled export function runs it; pure formatting in ``formats``, the Metrica client in
``metrica``."""
