import { PROJECTS } from '../api/documents';
import type { Project } from '../api/types';
import { useQuery } from '../hooks';
import { formatRoute } from '../route';
import { LoadError, Loading } from './ui';

interface Data {
  organization: { id: string; projects: { edges: { node: Project }[] } } | null;
}

export function ProjectsPage(props: { org: string }): preact.JSX.Element {
  const { data, error, reload } = useQuery<Data>(PROJECTS, { slug: props.org });
  if (error) return <LoadError error={error} retry={reload} />;
  if (!data) return <Loading what="projects" />;
  const projects = data.organization?.projects.edges.map((edge) => edge.node) ?? [];
  return (
    <section>
      <h1>Projects</h1>
      {projects.length === 0 ? (
        <p>No projects yet. Create one with the API or the CLI (<code>createProject</code>).</p>
      ) : (
        <ul class="project-list">
          {projects.map((project) => (
            <li key={project.id}>
              <a href={formatRoute({ page: 'project', org: props.org, projectId: project.id })}>{project.name}</a>
              {project.description ? <p>{project.description}</p> : null}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
