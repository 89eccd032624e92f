
#define EVENT_NOTIFIER_H_QAIO 1

/* A callback taking the notifier that fired (aio_set_event_notifier). */
typedef struct EventNotifier EventNotifier;
typedef void EventNotifierHandler(EventNotifier *);
