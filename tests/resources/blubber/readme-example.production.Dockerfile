FROM docker-registry.wikimedia.org/wikimedia-buster:latest AS prep
USER 0
ENV HOME="/root"
ENV DEBIAN_FRONTEND="noninteractive"
RUN apt-get update && apt-get install -y -t "buster-backports" "npm" && apt-get install -y "libjpeg" "libyaml" "libjpeg-dev" "libyaml-dev" && rm -rf /var/lib/apt/lists/*
ARG LIVES_AS="somebody"
ARG LIVES_UID=65533
ARG LIVES_GID=65533
RUN (getent group "$LIVES_GID" || groupadd -o -g "$LIVES_GID" -r "$LIVES_AS") && (getent passwd "$LIVES_UID" || useradd -l -o -m -d "/home/$LIVES_AS" -r -g "$LIVES_GID" -u "$LIVES_UID" "$LIVES_AS") && mkdir -p "/srv/app" && chown "$LIVES_UID":"$LIVES_GID" "/srv/app" && mkdir -p "/opt/lib" && chown "$LIVES_UID":"$LIVES_GID" "/opt/lib"
ARG RUNS_AS="runuser"
ARG RUNS_UID=900
ARG RUNS_GID=900
RUN (getent group "$RUNS_GID" || groupadd -o -g "$RUNS_GID" -r "$RUNS_AS") && (getent passwd "$RUNS_UID" || useradd -l -o -m -d "/home/$RUNS_AS" -r -g "$RUNS_GID" -u "$RUNS_UID" "$RUNS_AS")
USER $LIVES_UID
ENV HOME="/home/somebody"
WORKDIR "/srv/app"
ENV BAR="baz" FOO="bar"
COPY --chown=$LIVES_UID:$LIVES_GID ["package.json", "package-lock.json", "./"]
RUN npm ci "--only=production"
RUN npm dedupe
COPY --chown=$LIVES_UID:$LIVES_GID ["composer.json", "./"]
RUN composer install "--no-scripts" "--no-dev"
COPY --chown=$LIVES_UID:$LIVES_GID ["requirements.txt", "./"]
RUN python2.7 "-m" "venv" "/opt/lib/venv"
ENV PATH="/opt/lib/venv/bin:$PATH" VIRTUAL_ENV="/opt/lib/venv"
RUN python2.7 "-m" "pip" "install" "-U" "setuptools!=60.9.0" && python2.7 "-m" "pip" "install" "-U" "wheel" "tox" "pip<21"
RUN python2.7 "-m" "pip" "install" "-r" "requirements.txt"
COPY --chown=$LIVES_UID:$LIVES_GID ["Makefile", "vendor", "./"]
RUN make "deps"
COPY --chown=$LIVES_UID:$LIVES_GID [".", "."]
USER $RUNS_UID
ENV HOME="/home/$RUNS_AS"
ENV NODE_ENV="production"

FROM docker-registry.wikimedia.org/wikimedia-stretch:latest AS production
USER 0
ENV HOME="/root"
ENV DEBIAN_FRONTEND="noninteractive"
RUN apt-get update && apt-get install -y "libjpeg" "libyaml" && rm -rf /var/lib/apt/lists/*
ARG LIVES_AS="somebody"
ARG LIVES_UID=65533
ARG LIVES_GID=65533
RUN (getent group "$LIVES_GID" || groupadd -o -g "$LIVES_GID" -r "$LIVES_AS") && (getent passwd "$LIVES_UID" || useradd -l -o -m -d "/home/$LIVES_AS" -r -g "$LIVES_GID" -u "$LIVES_UID" "$LIVES_AS") && mkdir -p "/srv/app" && chown "$LIVES_UID":"$LIVES_GID" "/srv/app" && mkdir -p "/opt/lib" && chown "$LIVES_UID":"$LIVES_GID" "/opt/lib"
ARG RUNS_AS="runuser"
ARG RUNS_UID=900
ARG RUNS_GID=900
RUN (getent group "$RUNS_GID" || groupadd -o -g "$RUNS_GID" -r "$RUNS_AS") && (getent passwd "$RUNS_UID" || useradd -l -o -m -d "/home/$RUNS_AS" -r -g "$RUNS_GID" -u "$RUNS_UID" "$RUNS_AS")
USER $LIVES_UID
ENV HOME="/home/somebody"
WORKDIR "/srv/app"
ENV BAR="baz" FOO="bar"
COPY --chown=$LIVES_UID:$LIVES_GID --from=prep ["/srv/app", "/srv/app"]
COPY --chown=$LIVES_UID:$LIVES_GID --from=prep ["/opt/lib", "/opt/lib"]
USER $RUNS_UID
ENV HOME="/home/$RUNS_AS"
ENV NODE_ENV="production"
ENTRYPOINT ["node", "server.js"]

LABEL blubber.variant="production" blubber.version="0.1.0"
