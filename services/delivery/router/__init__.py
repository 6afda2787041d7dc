from services.delivery.router.events import router as events_router
from services.delivery.router.subscriptions import router as subscriptions_router

ROUTERS = (subscriptions_router, events_router)
